// Hierarchical refinement: interpolation counts on hand-checked cases, validity of every produced
// architecture, the tail of a longer model, and determinism.
#include <gtest/gtest.h>

#include <set>

#include "design_space/arch_graph.h"
#include "design_space/refinement.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "<test>")); }

const Architecture kTiny128 = parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})");
const Architecture kTiny256 = parse(R"({"l":2,"h":[256,256],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})");
const Architecture kFNet = parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["l","l"],"f":[[512],[512]],"p":["dft","dft"]})");
const Architecture kWide3 =
    parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[1024,1024,1024],[1024,1024,1024]],"p":["sdp","sdp"]})");
const Architecture kDeep = parse(
    R"({"l":4,"h":[256,256,256,256],"n":[4,4,2,2],"o":["sa","sa","c","c"],"f":[[512],[512],[1024],[1024]],"p":["sdp","sdp",9,9]})");

RefinementSettings settings(int64_t old_lps = 2, int64_t new_lps = 1, bool het = false) {
  RefinementSettings s;
  s.old_layers_per_stack = old_lps;
  s.new_layers_per_stack = new_lps;
  s.heterogeneous_feed_forward = het;
  return s;
}

std::set<std::string> canon(const std::vector<Architecture>& archs) {
  std::set<std::string> out;
  for (const auto& a : archs) out.insert(a.to_canonical_string());
  return out;
}

TEST(Refinement, HiddenSizeSplitsIntoIndependentSubStacks) {
  const auto archs = interpolate(kTiny128, kTiny256, settings());
  ASSERT_EQ(archs.size(), 4u);  // 2 sub-stacks x {128, 256}
  EXPECT_EQ(interpolation_count(kTiny128, kTiny256, settings()), 4u);
  const auto set = canon(archs);
  EXPECT_TRUE(set.count(kTiny128.to_canonical_string()));
  EXPECT_TRUE(set.count(kTiny256.to_canonical_string()));
  EXPECT_TRUE(set.count(R"({"l":2,"h":[128,256],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})"));
  EXPECT_TRUE(set.count(R"({"l":2,"h":[256,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})"));
  // The reference's order: hidden sizes ascending, first sub-stack slowest.
  EXPECT_EQ(archs[0], kTiny128);
  EXPECT_EQ(archs[3], kTiny256);
}

TEST(Refinement, ParametersStayWithTheirOperationType) {
  const auto archs = interpolate(kTiny128, kFNet, settings());
  ASSERT_EQ(archs.size(), 4u);  // {sa/sdp, l/dft} per sub-stack: never sa/dft or l/sdp
  for (const auto& a : archs)
    for (const auto& layer : a.layers) EXPECT_TRUE((layer.op == "sa" && layer.param == "sdp") || (layer.op == "l" && layer.param == "dft"));
}

TEST(Refinement, FeedForwardHomogeneousAndHeterogeneous) {
  // Local nff {1, 3}, widths {512, 1024}. Homogeneous: 2 x 2 = 4 per sub-stack -> 16.
  EXPECT_EQ(interpolate(kTiny128, kWide3, settings()).size(), 16u);
  // Heterogeneous: nff 1 -> 2 tuples, nff 3 -> 2^3 = 8 tuples: 10 per sub-stack -> 100.
  const auto het = interpolate(kTiny128, kWide3, settings(2, 1, true));
  EXPECT_EQ(het.size(), 100u);
  EXPECT_EQ(interpolation_count(kTiny128, kWide3, settings(2, 1, true)), 100u);
  bool mixed = false;
  for (const auto& a : het)
    for (const auto& layer : a.layers) mixed |= std::set<int64_t>(layer.ffn.begin(), layer.ffn.end()).size() > 1;
  EXPECT_TRUE(mixed);
}

TEST(Refinement, LongerModelKeepsItsTailVerbatim) {
  // Common prefix: one coarse stack (h {128, 256}, n {2, 4}) -> 2 sub-stacks of 4 -> 16 prefixes,
  // each also emitted with kDeep's last two layers appended: 32.
  const auto archs = interpolate(kTiny128, kDeep, settings());
  EXPECT_EQ(archs.size(), 32u);
  EXPECT_EQ(interpolation_count(kTiny128, kDeep, settings()), 32u);
  size_t with_tail = 0;
  for (const auto& a : archs) {
    ASSERT_TRUE(a.num_layers() == 2 || a.num_layers() == 4);
    if (a.num_layers() == 4) {
      ++with_tail;
      EXPECT_EQ(a.layers[2], kDeep.layers[2]);
      EXPECT_EQ(a.layers[3], kDeep.layers[3]);
    }
  }
  EXPECT_EQ(with_tail, 16u);
  // The longer model itself is among them.
  EXPECT_TRUE(canon(archs).count(kDeep.to_canonical_string()));
}

TEST(Refinement, EveryArchitectureIsWithinTheParentsLocalChoices) {
  for (const auto& other : {kTiny256, kFNet, kWide3, kDeep}) {
    const auto choices = local_choices(kTiny128, other, settings());
    for (const auto& a : interpolate(kTiny128, other, settings(2, 1, true))) {
      for (size_t k = 0; k < choices.size(); ++k) {
        const LayerSpec& layer = a.layers[k];
        const auto& c = choices[k];
        EXPECT_TRUE(std::count(c.hidden.begin(), c.hidden.end(), layer.hidden));
        EXPECT_TRUE(std::count(c.heads.begin(), c.heads.end(), layer.heads));
        EXPECT_TRUE(std::count(c.nff.begin(), c.nff.end(), int64_t(layer.ffn.size())));
        for (int64_t w : layer.ffn) EXPECT_TRUE(std::count(c.widths.begin(), c.widths.end(), w));
        EXPECT_TRUE(std::count(c.ops.begin(), c.ops.end(), layer.op));
      }
    }
  }
}

TEST(Refinement, DeterministicAndSymmetricAsASet) {
  EXPECT_EQ(interpolate(kTiny128, kDeep, settings()), interpolate(kTiny128, kDeep, settings()));
  EXPECT_EQ(canon(interpolate(kTiny128, kTiny256, settings())), canon(interpolate(kTiny256, kTiny128, settings())));
}

TEST(Refinement, KeepingTheStackSizeGivesTheCoarseProduct) {
  // new lps = old lps: one sub-stack per coarse stack.
  EXPECT_EQ(interpolate(kTiny128, kTiny256, settings(2, 2)).size(), 2u);
}

TEST(Refinement, Errors) {
  try {
    interpolate(kTiny128, kTiny256, settings(2, 3));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "error: refine: the new stack size (3) must divide the old one (2)");
  }
  const Architecture uneven = parse(R"({"l":2,"h":[128,256],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})");
  try {
    interpolate(uneven, kTiny256, settings());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "error: refine: model a: layer 1 differs from the first layer of its stack (2 identical layers per stack expected)");
  }
}

}  // namespace
}  // namespace flexnas

namespace flexnas {
namespace {

TEST(Refinement, AroundTopModelsUsesNeighboursAndTopPairs) {
  Library lib;
  lib.archs = {kTiny128, kTiny256, kFNet, kWide3};
  for (const auto& a : lib.archs) lib.hashes.push_back(architecture_hash(a));
  // kTiny128's neighbours: kFNet then kWide3; kTiny256's: kTiny128.
  lib.neighbors = {{lib.hashes[2], lib.hashes[3]}, {lib.hashes[0]}, {}, {}};
  lib.rebuild_index();
  const auto refined = refine_around(lib, {0, 1}, /*neighbors=*/1, settings());
  // Pairs: (0,2) from 0's first neighbour, (1,0) from 1's first neighbour; the top pair (0,1) is
  // the same pair and is not repeated.
  ASSERT_EQ(refined.pairs.size(), 2u);
  EXPECT_EQ(refined.pairs[0].a, 0);
  EXPECT_EQ(refined.pairs[0].b, 2);
  EXPECT_EQ(refined.pairs[0].produced, 4u);
  EXPECT_EQ(refined.pairs[0].added, 4u);
  EXPECT_EQ(refined.pairs[1].produced, 4u);
  EXPECT_EQ(refined.pairs[1].added, 3u);  // kTiny128 itself came from the first pair
  EXPECT_EQ(refined.archs.size(), 7u);
  EXPECT_EQ(std::set<std::string>(refined.hashes.begin(), refined.hashes.end()).size(), 7u);
}

}  // namespace
}  // namespace flexnas
