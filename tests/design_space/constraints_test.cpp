// Design-space constraints {max_parameters, max_flops}: the space holds exactly the architectures
// within them, in the unconstrained order (checked against filtering the full enumeration), and
// every consumer sees that: count, index <-> architecture, sampling, libraries and refinement.
// Costs come from the stand-in catalogue (tests/design_space/test_catalog.h); what the models'
// count means is tested in tests/nas (constraints with the real catalogue).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "design_space/library_builder.h"
#include "design_space/refinement.h"
#include "tests/design_space/test_catalog.h"

namespace flexnas {
namespace {

// 24 architectures of depth 2 and 576 of depth 4 at layers_per_stack 2.
const std::string kSpace = R"(architecture:
  hidden_size: [128, 256]
  num_heads: [2, 4]
  encoder_layers: [2, 4]
  operation_types: [sa, l]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [512, 1024]
  operation_parameters:
    sa: [sdp, wma]
    l: [dft]
)";

DesignSpace space_with(const std::string& constraints) {
  return parse_design_space(kSpace + constraints, "space.yaml", testing::test_catalog());
}

std::vector<Architecture> all_of(const Enumerator& e) {
  std::vector<Architecture> out;
  for (BigCount i = 0; i < e.count(); ++i) out.push_back(e.at(i));
  return out;
}

/// The independent computation: the unconstrained order, filtered.
std::vector<Architecture> filtered(int64_t max_parameters, double max_flops) {
  const Enumerator full(space_with(""), EnumerationSettings{});
  std::vector<Architecture> out;
  for (const Architecture& a : all_of(full)) {
    const ArchitectureCost c = testing::test_catalog().cost(a);
    if ((max_parameters == 0 || c.parameters <= max_parameters) && (max_flops == 0 || c.flops_per_token <= max_flops))
      out.push_back(a);
  }
  return out;
}

/// A limit that keeps part of the space: the median cost.
int64_t median_parameters() {
  const Enumerator full(space_with(""), EnumerationSettings{});
  std::vector<int64_t> costs;
  for (const Architecture& a : all_of(full)) costs.push_back(testing::test_catalog().cost(a).parameters);
  std::sort(costs.begin(), costs.end());
  return costs[costs.size() / 2];
}

TEST(Constraints, MaxParametersKeepsExactlyTheArchitecturesWithinInOrder) {
  const int64_t N = median_parameters();
  const std::vector<Architecture> expected = filtered(N, 0);
  ASSERT_GT(expected.size(), 10u);
  ASSERT_LT(expected.size(), 600u);
  const Enumerator e(space_with("constraints: {max_parameters: " + std::to_string(N) + "}\n"), EnumerationSettings{});
  EXPECT_TRUE(e.constrained());
  EXPECT_EQ(e.unconstrained_count(), BigCount(600));
  ASSERT_EQ(e.count(), BigCount(expected.size()));
  EXPECT_EQ(all_of(e), expected);  // same architectures, same relative order
  EXPECT_EQ(e.count_per_depth()[0] + e.count_per_depth()[1], e.count());
  const auto depth2 = std::count_if(expected.begin(), expected.end(), [](const Architecture& a) { return a.num_layers() == 2; });
  EXPECT_EQ(e.count_per_depth()[0], BigCount(depth2));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(e.index_of(expected[i]), BigCount(i));
  // An architecture of the space above the limit is not in the constrained space, and says why.
  const Enumerator full(space_with(""), EnumerationSettings{});
  for (const Architecture& a : all_of(full)) {
    if (std::find(expected.begin(), expected.end(), a) != expected.end()) continue;
    EXPECT_FALSE(e.contains(a));
    try {
      e.index_of(a, "arch.json");
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& err) {
      EXPECT_NE(std::string(err.what()).find("arch.json: not in the design space 'space.yaml': outside its constraints: "),
                std::string::npos)
          << err.what();
      EXPECT_NE(std::string(err.what()).find(" parameters, above max_parameters = "), std::string::npos) << err.what();
    }
    break;
  }
  // Sampling draws from the constrained space only, ascending.
  std::mt19937_64 rng(5);
  const std::vector<BigCount> sample = e.sample(20, rng);
  ASSERT_EQ(sample.size(), 20u);
  EXPECT_TRUE(std::is_sorted(sample.begin(), sample.end()));
  for (BigCount i : sample) EXPECT_LT(i, e.count());
}

TEST(Constraints, MaxFlopsAndBothLimits) {
  const int64_t N = median_parameters();
  const int64_t F = 4 * N;  // the toy FLOPs are 2 x parameters: F keeps up to twice the median
  const Enumerator flops(space_with("constraints: {max_flops: " + std::to_string(F) + "}\n"), EnumerationSettings{});
  EXPECT_EQ(all_of(flops), filtered(0, double(F)));
  const Enumerator both(space_with("constraints:\n  max_parameters: " + std::to_string(N) + "\n  max_flops: " +
                                   std::to_string(F) + "\n"),
                        EnumerationSettings{});
  EXPECT_EQ(all_of(both), filtered(N, double(F)));
  EXPECT_LT(both.count(), flops.count());
  // 0 = no limit: the reference order and count unchanged.
  const Enumerator none(space_with("constraints: {max_parameters: 0, max_flops: 0}\n"), EnumerationSettings{});
  EXPECT_FALSE(none.constrained());
  EXPECT_EQ(none.count(), BigCount(600));
  // A limit below every architecture leaves an empty space: counted as 0, and no library is built.
  const Enumerator empty(space_with("constraints: {max_parameters: 1}\n"), EnumerationSettings{});
  EXPECT_EQ(empty.count(), BigCount(0));
  int64_t smallest = std::numeric_limits<int64_t>::max();
  for (const Architecture& a : all_of(Enumerator(space_with(""), EnumerationSettings{})))
    smallest = std::min(smallest, testing::test_catalog().cost(a).parameters);
  EXPECT_EQ(empty.min_cost().parameters, smallest);
  LibraryBuildOptions o;
  o.progress = false;
  try {
    build_library(space_with("constraints: {max_parameters: 1}\n"), o);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("space.yaml: none of the 600 architectures is within the constraints "
                                         "(max_parameters 1, max_flops none); the smallest has " +
                                         std::to_string(smallest) + " parameters"),
              std::string::npos)
        << e.what();
  }
}

TEST(Constraints, LibraryHoldsExactlyTheArchitecturesWithinInOrder) {
  const int64_t N = median_parameters();
  const std::vector<Architecture> expected = filtered(N, 0);
  LibraryBuildOptions o;
  o.progress = false;
  o.neighbors = 5;
  o.embedding.dim = 4;
  LibraryBuildReport report;
  const Library lib = build_library(space_with("constraints: {max_parameters: " + std::to_string(N) + "}\n"), o, &report);
  EXPECT_EQ(lib.archs, expected);
  EXPECT_EQ(report.space_size, BigCount(expected.size()));
  EXPECT_EQ(lib.meta["source"]["space_size"], std::to_string(expected.size()));
  EXPECT_EQ(library_constraints(lib).max_parameters, N);
  EXPECT_EQ(library_constraints(parse_library(library_to_string(lib), "lib.json")).max_parameters, N);
  // A sample comes from the constrained space, in its order.
  o.sample = 30;
  const Library sampled = build_library(space_with("constraints: {max_parameters: " + std::to_string(N) + "}\n"), o);
  ASSERT_EQ(sampled.size(), 30u);
  size_t at = 0;
  for (const Architecture& a : sampled.archs) {
    while (at < expected.size() && !(expected[at] == a)) ++at;
    EXPECT_LT(at, expected.size()) << "not in the constrained space, or out of order: " << a.to_canonical_string();
  }
  // An unconstrained library has no constraints key (its file is unchanged).
  o.sample = 0;
  EXPECT_FALSE(build_library(space_with(""), o).meta.contains("constraints"));
}

TEST(Constraints, RefinementKeepsTheLibrarysConstraints) {
  auto dict = [](int h, int f) {
    const std::string layer = std::to_string(h);
    return architecture_from_json(
        nlohmann::json::parse("{\"l\":4,\"h\":[" + layer + "," + layer + "," + layer + "," + layer +
                              "],\"n\":[2,2,2,2],\"o\":[\"sa\",\"sa\",\"sa\",\"sa\"],\"f\":[[" + std::to_string(f) +
                              "],[" + std::to_string(f) + "],[" + std::to_string(f) + "],[" + std::to_string(f) +
                              "]],\"p\":[\"sdp\",\"sdp\",\"sdp\",\"sdp\"]}"),
        "test");
  };
  Library coarse;
  coarse.archs = {dict(128, 512), dict(256, 1024)};  // 4 fine stacks x {128, 256} x {512, 1024}: 256 between
  coarse.hashes = {"a", "b"};
  coarse.pad_to_size();
  coarse.neighbors = {{"b"}, {"a"}};
  coarse.rebuild_index();
  RefinementSettings s;
  const RefinedArchitectures open = refine_around(coarse, {0}, 1, s);
  ASSERT_EQ(open.archs.size(), 256u);
  std::vector<int64_t> costs;
  for (const Architecture& a : open.archs) costs.push_back(testing::test_catalog().cost(a).parameters);
  std::sort(costs.begin(), costs.end());
  const int64_t N = costs[costs.size() / 2];
  Constraints c;
  c.max_parameters = N;
  coarse.meta["constraints"] = constraints_to_json(c);
  EXPECT_THROW(refine_around(coarse, {0}, 1, s), ConfigError);  // no catalogue to price them
  s.ops = &testing::test_catalog();
  const RefinedArchitectures within = refine_around(coarse, {0}, 1, s);
  std::vector<Architecture> expected;
  for (const Architecture& a : open.archs)
    if (testing::test_catalog().cost(a).parameters <= N) expected.push_back(a);
  EXPECT_EQ(within.archs, expected);
  EXPECT_EQ(within.outside_constraints, open.archs.size() - expected.size());
}

TEST(Constraints, NeedACatalogueAndAScannableSpace) {
  // Loaded without a catalogue (structure only): the constraints cannot be applied.
  const DesignSpace bare = design_space_from_config(
      ConfigNode::load_string(kSpace + "constraints: {max_parameters: 1000000}\n", "space.yaml"), nullptr);
  try {
    Enumerator(bare, EnumerationSettings{});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("need the operation catalogue"), std::string::npos) << e.what();
  }
  // Too many architectures to price: a clear message instead of hours of work.
  const std::string huge = R"(architecture:
  hidden_size: [64, 128, 256, 512]
  num_heads: [1, 2, 4, 8]
  encoder_layers: [24]
  operation_types: [sa]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [512]
  operation_parameters:
    sa: [sdp]
constraints: {max_parameters: 1000000}
)";
  try {
    Enumerator(parse_design_space(huge, "huge.yaml", testing::test_catalog()), EnumerationSettings{});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("huge.yaml: constraints (max_parameters 1,000,000, max_flops none) are applied by "
                                         "pricing every architecture, and the space has 281474976710656 before them (limit "
                                         "20000000)"),
              std::string::npos)
        << e.what();
  }
  // A bad value stays a located error.
  try {
    space_with("constraints: {max_parameters: -5}\n");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("space.yaml:11:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("must be >= 0 (0 = no limit)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flexnas
