#include "models/op_registry.h"

#include "design_space/error.h"

namespace flexnas::models {

LayoutAxis LayoutAxis::head_blocks(int64_t groups, int64_t heads, int64_t dim, bool centered_dim) {
  LayoutAxis a{Kind::kHeads, groups * heads * dim};
  a.groups = groups;
  a.heads = heads;
  a.dim = dim;
  a.centered_dim = centered_dim;
  return a;
}

void ParamLayout::add(const std::string& name, std::vector<LayoutAxis> axes) { tensors.push_back({name, std::move(axes)}); }

void ParamLayout::linear(const std::string& prefix, const LayoutAxis& out, const LayoutAxis& in) {
  add(prefix + ".weight", {out, in});
  add(prefix + ".bias", {out});
}

void OpRegistry::add(OpDefinition def) {
  FLEXNAS_CHECK(!def.name.empty(), "operation type without a name");
  FLEXNAS_CHECK(ops_.count(def.name) == 0, "operation type '", def.name, "' registered twice");
  FLEXNAS_CHECK(def.check_param && def.check_core && def.core_output_width && def.core_params && def.core_flops &&
                    def.build_core && def.core_layout && def.head_params && def.head_flops && def.build_head &&
                    def.head_layout,
                "operation type '", def.name, "' leaves a function of its OpDefinition empty");
  FLEXNAS_CHECK(!def.pools_queries || def.core_flops_pooled, "operation type '", def.name,
                "' pools queries but has no core_flops_pooled");
  const std::string name = def.name;
  ops_.emplace(name, std::move(def));
}

const OpDefinition* OpRegistry::find(const std::string& name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, def] : ops_) out.push_back(name);
  return out;
}

OpRegistry& op_registry() {
  static OpRegistry registry;
  return registry;
}

OpRegistrar::OpRegistrar(OpDefinition def) { op_registry().add(std::move(def)); }

}  // namespace flexnas::models
