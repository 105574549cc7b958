#pragma once
// A stand-in for models::op_catalog() in the design_space tests. Why not the real one: these tests
// are LibTorch-free and run one process per test case (gtest discovery), and LibTorch costs 0.7 s
// of start-up per process. The stand-in names the three reference types with the registry's
// parameter rules; tests/models/op_contract_test.cpp holds it to the registry (same names, and the
// same accepted and rejected parameters for every example), so it cannot drift silently. Its
// cost() is a toy formula, not the models' count: design_space tests check how constraints filter
// and keep order; what the count means is tested against the real catalogue in tests/nas.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "design_space/op_catalog.h"

namespace flexnas::testing {

class TestCatalog : public OpCatalog {
 public:
  std::vector<std::string> names() const override { return {"c", "l", "sa"}; }
  bool has(const std::string& op) const override { return op == "sa" || op == "l" || op == "c"; }
  std::string check_param(const std::string& op, const std::string& p) const override {
    if (op == "sa") return p == "sdp" || p == "wma" ? "" : "sdp, wma";
    if (op == "l") return p == "dft" || p == "dct" ? "" : "dft, dct";
    const bool digits = !p.empty() && p.size() < 4 &&
                        std::all_of(p.begin(), p.end(), [](unsigned char ch) { return std::isdigit(ch); });
    if (digits && std::stoi(p) % 2 == 1 && std::stoi(p) >= 3) return "";
    return "an odd kernel size >= 3 such as 5, 9 or 13";
  }
  /// Toy: per layer 4h^2 (+h^2 for wma) + the feed-forward matrices; FLOPs twice that.
  ArchitectureCost cost(const Architecture& arch) const override {
    ArchitectureCost c;
    for (const LayerSpec& l : arch.layers) {
      c.parameters += 4 * l.hidden * l.hidden + (l.param == "wma" ? l.hidden * l.hidden : 0);
      int64_t in = l.hidden;
      for (int64_t w : l.ffn) c.parameters += in * w, in = w;
      c.parameters += in * l.hidden;
    }
    c.flops_per_token = 2.0 * double(c.parameters);
    return c;
  }
  std::string cost_description() const override { return "test catalogue's toy count"; }
  /// The registry's vocabulary order for its three types (the op contract test compares).
  int order_rank(const std::string& op) const override { return op == "l" ? 0 : op == "sa" ? 1 : 2; }
  int64_t param_order(const std::string& op, const std::string& p) const override {
    if (op == "sa") return p == "wma" ? 1 : 0;
    if (op == "l") return p == "dct" ? 1 : 0;
    return check_param(op, p).empty() ? std::stoi(p) : 0;
  }
};

inline const OpCatalog& test_catalog() {
  static const TestCatalog catalog;
  return catalog;
}

}  // namespace flexnas::testing
