#include "models/op_catalog.h"

#include "design_space/error.h"
#include "models/flex_model.h"
#include "models/op_registry.h"

namespace flexnas::models {
namespace {

class RegistryCatalog : public OpCatalog {
  static const OpDefinition& def(const std::string& op) {
    const OpDefinition* d = op_registry().find(op);
    FLEXNAS_CHECK(d, "unknown operation type '", op, "'");
    return *d;
  }

 public:
  std::vector<std::string> names() const override { return op_registry().names(); }
  bool has(const std::string& op) const override { return op_registry().find(op) != nullptr; }
  std::string check_param(const std::string& op, const std::string& param) const override {
    const OpDefinition* def = op_registry().find(op);
    FLEXNAS_CHECK(def, "check_param of unknown operation type '", op, "'");
    return def->check_param(param);
  }
  ArchitectureCost cost(const Architecture& arch) const override {
    // The ModelOptions defaults: BERT's 30,522-token vocabulary, 514 positions; 128 tokens.
    const BaseModelCost c = base_model_cost(arch, ModelOptions{});
    return {c.parameters, c.flops_per_token};
  }
  int order_rank(const std::string& op) const override { return def(op).order_rank; }
  int64_t param_order(const std::string& op, const std::string& param) const override {
    const OpDefinition& d = def(op);
    return d.param_order ? d.param_order(param) : 0;
  }
  std::string cost_description() const override {
    return "parameters of the base model as built (embeddings at a 30,522-token vocabulary, encoder, pooler; "
           "no task head); FLOPs per token of the encoder at 128 tokens";
  }
};

}  // namespace

const OpCatalog& op_catalog() {
  static const RegistryCatalog catalog;
  return catalog;
}

}  // namespace flexnas::models
