#pragma once
// What design_space/ needs to know about operation types, as an interface it owns: the model
// registry (models/, LibTorch) implements it (models/op_catalog.h) and callers pass it explicitly
// to load_design_space, so design_space/ stays free of LibTorch and there is one catalogue, the
// registry's OpDefinitions. Tests of design_space/ use a small stand-in
// (tests/design_space/test_catalog.h) that the op contract test holds to the registry.
#include <cstdint>
#include <string>
#include <vector>

#include "design_space/architecture.h"

namespace flexnas {

/// The size of an architecture as design-space constraints (max_parameters, max_flops) measure it.
struct ArchitectureCost {
  int64_t parameters = 0;
  double flops_per_token = 0;
};

class OpCatalog {
 public:
  virtual ~OpCatalog() = default;
  /// The operation type names, sorted.
  virtual std::vector<std::string> names() const = 0;
  virtual bool has(const std::string& op) const = 0;
  /// "" when `param` is a valid parameter of the known type `op`, else what is allowed ("sdp, wma").
  virtual std::string check_param(const std::string& op, const std::string& param) const = 0;
  /// What the constraints count; throws ConfigError when the architecture cannot be built.
  virtual ArchitectureCost cost(const Architecture& arch) const = 0;
  /// One line naming what cost() counts (printed next to constraint counts).
  virtual std::string cost_description() const = 0;
  /// The operation vocabulary's cost order (distance.cpp, spec §2.4), for the known type `op`: its
  /// group's rank (groups by rank, equal ranks by name; the reference's l, sa, c are 0, 1, 2) ...
  virtual int order_rank(const std::string& op) const = 0;
  /// ... and the key of a parameter inside the group (ascending, equal keys by name).
  virtual int64_t param_order(const std::string& op, const std::string& param) const = 0;
};

}  // namespace flexnas
