// Block parameter sharing (Funnel-Transformer's "3x2" blocks, seed 003): the model-dict key
// "share", its located errors, its graph vertices and hash, its structural distance, and the
// design-space choice architecture.share with the enumeration bijection.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "design_space/arch_graph.h"
#include "design_space/architecture.h"
#include "design_space/distance.h"
#include "design_space/enumeration.h"
#include "design_space/error.h"
#include "tests/design_space/test_catalog.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "arch.json")); }

std::string error_for(const std::string& json) {
  try {
    parse(json);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// Four identical sa layers, then a wider one.
const std::string kLayers =
    R"("l":5,"h":[16,16,16,16,32],"n":[2,2,2,2,2],"o":["sa","sa","sa","sa","sa"],"f":[[32],[32],[32],[32],[32]],)"
    R"("p":["sdp","sdp","sdp","sdp","sdp"])";

TEST(Share, CanonicalFormRoundTripsAndOwnParametersAreNoKey) {
  const Architecture a = parse("{" + kLayers + R"(,"share":[0,0,2,2,4]})");
  EXPECT_EQ(a.share, (std::vector<int64_t>{0, 0, 2, 2, 4}));
  EXPECT_EQ(a.owner(1), 0u);
  EXPECT_EQ(a.owner(3), 2u);
  EXPECT_EQ(a.owner(4), 4u);
  EXPECT_EQ(a.to_canonical_string(), "{" + kLayers + R"(,"share":[0,0,2,2,4]})");
  EXPECT_EQ(parse(a.to_canonical_string()), a);
  // Every layer its own: the model without sharing, one canonical form and the reference's hash.
  const Architecture own = parse("{" + kLayers + R"(,"share":[0,1,2,3,4]})");
  const Architecture none = parse("{" + kLayers + "}");
  EXPECT_FALSE(own.shares());
  EXPECT_EQ(own, none);
  EXPECT_EQ(own.to_canonical_string(), none.to_canonical_string());
  EXPECT_EQ(architecture_hash(own), architecture_hash(none));
  // Hetero dicts share too; the key follows "pool".
  const Architecture h = parse(
      R"({"l":2,"h":[16,16],"f":[[32],[32]],"o":[["sa_sdp_8","l_dft_8"],["sa_sdp_8","l_dft_8"]],"share":[0,0],)"
      R"("pool":{"stride":[1,2]}})");
  EXPECT_EQ(h.to_canonical_string(),
            R"({"l":2,"h":[16,16],"f":[[32],[32]],"o":[["sa_sdp_8","l_dft_8"],["sa_sdp_8","l_dft_8"]],)"
            R"("pool":{"stride":[1,2],"q_only":true,"separate_cls":true,"decoder":2},"share":[0,0]})");
  EXPECT_EQ(parse(h.to_canonical_string()), h);
}

TEST(Share, BadKeysAreLocatedErrors) {
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,0,2]})"),
            "arch.json:1:151: error: share: expected 5 entries (one per layer, l = 5), got 3");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,2,2,3,4]})"),
            "arch.json:1:154: error: share[1]: layer 1 can run with the parameters of layer 0..1 (itself or an earlier "
            "layer), got 2");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,-1,2,3,4]})"),
            "arch.json:1:154: error: share[1]: layer 1 can run with the parameters of layer 0..1 (itself or an earlier "
            "layer), got -1");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,0,1,3,4]})"),
            "arch.json:1:156: error: share[2]: layer 2 cannot run with the parameters of layer 1, which runs with those "
            "of layer 0: name the owner, 0, instead");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,1,2,3,3]})"),
            "arch.json:1:160: error: share[4]: layer 4 cannot run with the parameters of layer 3: its hidden size differs "
            "(32 here, 16 there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for(R"({"l":2,"h":[16,16],"n":[2,4],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"],"share":[0,0]})"),
            "arch.json:1:91: error: share[1]: layer 1 cannot run with the parameters of layer 0: its number of heads "
            "differs (4 here, 2 there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","wma"],"share":[0,0]})"),
            "arch.json:1:91: error: share[1]: layer 1 cannot run with the parameters of layer 0: its operation parameter "
            "differs ('wma' here, 'sdp' there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","l"],"f":[[32],[32]],"p":["sdp","sdp"],"share":[0,0]})"),
            "arch.json:1:90: error: share[1]: layer 1 cannot run with the parameters of layer 0: its operation differs "
            "('l' here, 'sa' there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32,32]],"p":["sdp","sdp"],"share":[0,0]})"),
            "arch.json:1:94: error: share[1]: layer 1 cannot run with the parameters of layer 0: its feed-forward stack "
            "differs ([32, 32] here, [32] there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for(R"({"l":2,"h":[16,16],"f":[[32],[32]],"o":[["sa_sdp_8"],["l_dft_8"]],"share":[0,0]})"),
            "arch.json:1:78: error: share[1]: layer 1 cannot run with the parameters of layer 0: its head list differs "
            "([l_dft_8] here, [sa_sdp_8] there); shared layers need the same h, n, o, f and p");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":2})"),
            "arch.json:1:151: error: share: expected a list of layer indices such as [0, 0, 2, 2] (layer i runs with the "
            "parameters of layer share[i]; i itself = its own), got '2'");
  EXPECT_EQ(error_for("{" + kLayers + R"(,"share":[0,"a",2,3,4]})"),
            "arch.json:1:154: error: share[1]: expected an integer, got 'a'");
}

TEST(Share, GraphHasOneVertexPerSharingLayerAndItsOwnHash) {
  const Architecture none = parse("{" + kLayers + "}");
  const Architecture pairs = parse("{" + kLayers + R"(,"share":[0,0,2,2,4]})");
  const Architecture four = parse("{" + kLayers + R"(,"share":[0,0,0,0,4]})");
  const Architecture alternate = parse("{" + kLayers + R"(,"share":[0,1,0,1,4]})");
  const ArchGraph g = ArchGraph::from_architecture(pairs);
  const ArchGraph plain = ArchGraph::from_architecture(none);
  EXPECT_EQ(g.num_vertices(), plain.num_vertices() + 2);
  EXPECT_EQ(g.num_edges(), plain.num_edges() + 4);  // owner output -> share_<d> -> layer output
  const auto labels = g.labels();
  EXPECT_EQ(std::count(labels.begin(), labels.end(), "share_1"), 2);
  for (const auto& [from, to] : g.edges()) EXPECT_LT(from, to);
  // The vertex sequence the distances and neighbours read agrees with the graph's.
  EXPECT_EQ(vertex_labels(pairs), labels);
  EXPECT_EQ(vertex_labels(four), ArchGraph::from_architecture(four).labels());
  std::set<std::string> hashes;
  for (const Architecture* a : {&none, &pairs, &four, &alternate}) hashes.insert(architecture_hash(*a));
  EXPECT_EQ(hashes.size(), 4u);
}

TEST(Share, StructuralDistanceSeesSharing) {
  const Architecture none = parse("{" + kLayers + "}");
  const Architecture pairs = parse("{" + kLayers + R"(,"share":[0,0,2,2,4]})");
  const Architecture four = parse("{" + kLayers + R"(,"share":[0,0,0,0,4]})");
  StructuralDistance d({none, pairs, four});
  EXPECT_GT(d(0, 1), 0.0);
  EXPECT_GT(d(1, 2), 0.0);
  EXPECT_LT(d(0, 1), d(0, 2));  // two shared layers are nearer none than three
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(d(i, j), d(j, i));
  EXPECT_DOUBLE_EQ(structural_distance(pairs, parse(pairs.to_canonical_string())), 0.0);
  // Without sharing, no share_ label enters the cost table (the reference's).
  StructuralDistance reference({none});
  for (const auto& label : reference.table().order()) EXPECT_EQ(label.rfind("share_", 0), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Design spaces.

const std::string kSpace = R"(architecture:
  hidden_size: [16, 32]
  num_heads: [2]
  encoder_layers: [2, 4]
  operation_types: [sa, l]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [32]
  operation_parameters:
    sa: [sdp]
    l: [dct]
)";

EnumerationSettings lps(int64_t n) {
  EnumerationSettings s;
  s.layers_per_stack = n;
  return s;
}

std::string space_error(const std::string& yaml, int64_t layers_per_stack = 2) {
  try {
    const DesignSpace space = parse_design_space(yaml, "space.yaml", testing::test_catalog());
    Enumerator e(space, lps(layers_per_stack));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ShareSpace, CountsAndEveryIndexRoundTrips) {
  const DesignSpace plain = parse_design_space(kSpace, "space.yaml", testing::test_catalog());
  const DesignSpace shared = parse_design_space(kSpace + "  share: [1, 2]\n", "space.yaml", testing::test_catalog());
  EXPECT_EQ(shared.share_factors, (std::vector<int64_t>{1, 2}));
  Enumerator base(plain, lps(2)), e(shared, lps(2));
  // Each stack chooses a factor: depth 2 (one stack) 2 choices, depth 4 (two stacks) 4.
  EXPECT_EQ(e.count_per_depth()[0], 2 * base.count_per_depth()[0]);
  EXPECT_EQ(e.count_per_depth()[1], 4 * base.count_per_depth()[1]);
  std::set<std::string> seen, hashes;
  for (BigCount i = 0; i < e.count(); ++i) {
    const Architecture arch = e.at(i);
    EXPECT_EQ(e.index_of(arch), i);
    EXPECT_TRUE(seen.insert(arch.to_canonical_string()).second);
    hashes.insert(architecture_hash(arch));
    // Round trip through the model dict (validation included).
    EXPECT_EQ(parse(arch.to_canonical_string()), arch);
  }
  EXPECT_EQ(hashes.size(), size_t(e.count()));
  // The first sharing choice (factor 1 everywhere) is the space without sharing, in its order.
  for (BigCount i = 0; i < base.count_per_depth()[0]; ++i) EXPECT_EQ(e.at(i), base.at(i));
  const BigCount offset = e.count_per_depth()[0], base_offset = base.count_per_depth()[0];
  for (BigCount i = 0; i < base.count_per_depth()[1]; ++i) EXPECT_EQ(e.at(offset + i), base.at(base_offset + i));
  // Then the last stack shares (last stack fastest), then the first.
  EXPECT_EQ(e.at(offset + base.count_per_depth()[1]).share, (std::vector<int64_t>{0, 1, 2, 2}));
  EXPECT_EQ(e.at(offset + 2 * base.count_per_depth()[1]).share, (std::vector<int64_t>{0, 0, 2, 3}));
}

TEST(ShareSpace, FunnelOrderRepeatsEachParameterisedLayerInARow) {
  // B6-3x2: a stack of 6 layers from 3 parameterised ones, each applied twice (Funnel-Transformer's
  // block_param_size x block_repeat_size: layer a, a, b, b, c, c).
  const std::string space = R"(architecture:
  hidden_size: [16]
  num_heads: [2]
  encoder_layers: [6]
  operation_types: [sa]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [32]
  operation_parameters:
    sa: [sdp]
  share: [1, 2, 3, 6]
)";
  Enumerator e(parse_design_space(space, "space.yaml", testing::test_catalog()), lps(6));
  ASSERT_EQ(e.count(), 4);
  EXPECT_FALSE(e.at(0).shares());
  EXPECT_EQ(e.at(1).share, (std::vector<int64_t>{0, 0, 2, 2, 4, 4}));
  EXPECT_EQ(e.at(2).share, (std::vector<int64_t>{0, 0, 0, 3, 3, 3}));
  EXPECT_EQ(e.at(3).share, (std::vector<int64_t>{0, 0, 0, 0, 0, 0}));
  // Patterns that are no factor's are outside the space, with the reason.
  Architecture alternate = e.at(0);
  alternate.share = {0, 1, 0, 1, 0, 1};
  try {
    e.index_of(alternate);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& err) {
    EXPECT_EQ(std::string(err.what()),
              "error: architecture: not in the design space 'space.yaml': layers 0..5 share [0, 1, 0, 1, 0, 1], which is "
              "no repeat factor of architecture.share (a factor r: each parameterised layer run r times in a row)");
  }
  Enumerator plain(parse_design_space(kSpace, "space.yaml", testing::test_catalog()), lps(2));
  Architecture shared = plain.at(0);
  shared.share = {0, 0};
  EXPECT_FALSE(plain.contains(shared));
}

TEST(ShareSpace, BadFactorsAreLocatedErrors) {
  EXPECT_EQ(space_error(kSpace + "  share: [1, 3]\n"),
            "space.yaml:11:14: error: architecture.share[1]: share factor 3 does not divide layers_per_stack = 2 (a stack "
            "of layers_per_stack layers is layers_per_stack / r parameterised layers, each run r times)");
  EXPECT_EQ(space_error(kSpace + "  share: [1, 2]\n", 1),
            "space.yaml:11:14: error: architecture.share[1]: share factor 2 does not divide layers_per_stack = 1 (a stack "
            "of layers_per_stack layers is layers_per_stack / r parameterised layers, each run r times)");
  EXPECT_EQ(space_error(kSpace + "  share: [0, 2]\n"), "space.yaml:11:11: error: architecture.share[0]: expected a positive integer, got 0");
  EXPECT_EQ(space_error(kSpace + "  share: [2, 2]\n").rfind("space.yaml:11:", 0), 0u);
  EXPECT_EQ(space_error(kSpace + "  share: 2\n"),
            "space.yaml:11:10: error: architecture.share: expected a list of repeat factors such as [1, 2] (a stack of "
            "layers_per_stack layers is layers_per_stack / r parameterised layers, each run r times in a row), got '2'");
  // A factor named with the space's own enumeration block is checked on load.
  EXPECT_EQ(space_error("enumeration: {layers_per_stack: 2}\n" + kSpace + "  share: [8]\n"),
            "space.yaml:12:11: error: architecture.share[0]: share factor 8 does not divide layers_per_stack = 2 (a "
            "stack of layers_per_stack layers is layers_per_stack / r parameterised layers, each run r times)");
}

// Fuzz-style: seeded random share lists in model dicts either parse (and then round-trip and hash)
// or fail with a located error.
TEST(Share, RandomKeysParseOrFailLocated) {
  std::mt19937 rng(20);
  auto pick = [&](int n) { return int(std::uniform_int_distribution<int>(0, n - 1)(rng)); };
  const std::vector<std::string> values = {"0", "1", "2", "3", "4", "5", "-1", "\"a\"", "[]", "null", "1.5"};
  int parsed = 0, failed = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string share = "[";
    // Mostly 5 entries (l = 5), each mostly the layer itself or an earlier one.
    for (int k = 0, n = pick(5) ? 5 : 4 + 2 * pick(2); k < n; ++k) {
      const int kind = pick(6);
      const std::string v = kind < 3 ? std::to_string(k) : kind < 5 ? std::to_string(pick(k + 1)) : values[size_t(pick(int(values.size())))];
      share += (k ? "," : "") + v;
    }
    share += "]";
    if (pick(8) == 0) share = values[size_t(pick(int(values.size())))];
    const std::string json = "{" + kLayers + R"(,"share":)" + share + "}";
    try {
      const Architecture a = parse(json);
      EXPECT_EQ(parse(a.to_canonical_string()), a) << json;
      EXPECT_EQ(architecture_hash(a).size(), 64u);
      ++parsed;
    } catch (const ConfigError& err) {
      ++failed;
      EXPECT_EQ(std::string(err.what()).rfind("arch.json:1:", 0), 0u) << err.what() << "\n" << json;
    } catch (const std::exception& err) {
      ADD_FAILURE() << "not a ConfigError: " << err.what() << "\n" << json;
    }
  }
  EXPECT_GT(parsed, 10);
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace flexnas
