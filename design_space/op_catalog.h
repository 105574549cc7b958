#pragma once
// The operation types a design space may name, and which parameters each accepts. design_space/
// cannot see the model registry (it is free of LibTorch), so the registry in models/ adds its
// types here at start-up; the three reference types are built in.
#include <functional>
#include <string>
#include <vector>

namespace flexnas {

struct OpTypeInfo {
  std::string name;     // "sa"
  std::string summary;  // "self-attention; parameter: similarity sdp | wma"
  /// Returns "" when `param` is valid, else a description of what is allowed ("sdp, wma").
  std::function<std::string(const std::string& param)> check_param;
};

class OpCatalog {
 public:
  /// Adds or replaces an operation type.
  void add(OpTypeInfo info);
  const OpTypeInfo* find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::vector<OpTypeInfo> types_;
};

/// The process-wide catalogue: sa (sdp, wma), l (dft, dct), c (odd kernel size >= 1), plus any
/// type registered later.
OpCatalog& op_catalog();

}  // namespace flexnas
