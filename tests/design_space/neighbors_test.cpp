// Neighbour lists by the reference's biased rule, checked against a brute-force sort of every
// graph by (-overlap, embedding distance, index).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "tests/design_space/test_catalog.h"
#include "design_space/enumeration.h"
#include "design_space/neighbors.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "<test>")); }

std::vector<Architecture> test_space_archs(size_t stride) {
  const DesignSpace s = load_design_space(std::string(FLEXNAS_SOURCE_DIR) + "/examples/design_space_test.yaml", testing::test_catalog());
  const Enumerator e(s, EnumerationSettings{});
  std::vector<Architecture> archs;
  for (size_t i = 0; i < size_t(e.count()); i += stride) archs.push_back(e.at(BigCount(i)));
  return archs;
}

/// The reference's O(N^2 log N) rule, literally.
std::vector<int64_t> brute_force(const LabelSequences& seqs, const std::vector<std::vector<float>>& emb, size_t i,
                                 size_t k) {
  std::vector<int64_t> all(seqs.size());
  std::iota(all.begin(), all.end(), 0);
  auto dist = [&](size_t j) {
    double s = 0;
    for (size_t c = 0; c < emb[i].size(); ++c) s += (double(emb[i][c]) - emb[j][c]) * (double(emb[i][c]) - emb[j][c]);
    return s;
  };
  std::sort(all.begin(), all.end(), [&](int64_t a, int64_t b) {
    const auto ka = std::make_tuple(-common_prefix(seqs, i, size_t(a)), dist(size_t(a)), a);
    const auto kb = std::make_tuple(-common_prefix(seqs, i, size_t(b)), dist(size_t(b)), b);
    return ka < kb;
  });
  all.erase(std::remove(all.begin(), all.end(), int64_t(i)), all.end());
  all.resize(std::min(all.size(), k));
  return all;
}

std::vector<std::vector<float>> random_embeddings(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> emb(n, std::vector<float>(4));
  for (auto& row : emb)
    for (float& v : row) v = g(rng);
  return emb;
}

TEST(Neighbors, CommonPrefixCountsVertices) {
  const Architecture a = parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})");
  const Architecture b = parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[1024]],"p":["sdp","sdp"]})");
  const Architecture c = parse(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["wma","sdp"]})");
  const LabelSequences seqs = label_sequences({a, b, c});
  EXPECT_EQ(seqs.length(0), 12u);
  EXPECT_EQ(common_prefix(seqs, 0, 0), 12);
  // input, 2 heads, add_norm, f512, add_norm, 2 heads, add_norm, then f512 vs f1024.
  EXPECT_EQ(common_prefix(seqs, 0, 1), 9);
  EXPECT_EQ(common_prefix(seqs, 0, 2), 1);  // only input
}

TEST(Neighbors, MatchesBruteForceOnTestSpace) {
  const std::vector<Architecture> archs = test_space_archs(7);  // 1,331 graphs, every 7th
  const LabelSequences seqs = label_sequences(archs);
  const auto emb = random_embeddings(archs.size(), 11);
  NeighborOptions options;
  options.k = 100;
  options.progress = false;
  const auto nb = biased_neighbors(seqs, emb, options);
  ASSERT_EQ(nb.size(), archs.size());
  for (size_t i = 0; i < archs.size(); i += 37) EXPECT_EQ(nb[i], brute_force(seqs, emb, i, 100)) << "graph " << i;
  for (const auto& row : nb) EXPECT_EQ(row.size(), 100u);
}

TEST(Neighbors, TiesBrokenByIndexWithoutEmbeddings) {
  const std::vector<Architecture> archs = test_space_archs(50);
  const LabelSequences seqs = label_sequences(archs);
  NeighborOptions options;
  options.k = 10;
  options.progress = false;
  const auto nb = biased_neighbors(seqs, {}, options);
  const std::vector<std::vector<float>> zeros(archs.size(), std::vector<float>(2, 0.0f));
  for (size_t i = 0; i < archs.size(); ++i) EXPECT_EQ(nb[i], brute_force(seqs, zeros, i, 10));
}

TEST(Neighbors, SmallLibrariesGiveEveryOtherGraph) {
  const std::vector<Architecture> archs = test_space_archs(1000);  // 10 graphs
  ASSERT_EQ(archs.size(), 10u);
  const LabelSequences seqs = label_sequences(archs);
  NeighborOptions options;
  options.k = 100;
  options.progress = false;
  const auto nb = biased_neighbors(seqs, random_embeddings(10, 2), options);
  for (size_t i = 0; i < 10; ++i) {
    ASSERT_EQ(nb[i].size(), 9u);
    EXPECT_EQ(std::count(nb[i].begin(), nb[i].end(), int64_t(i)), 0);
    std::vector<int64_t> sorted = nb[i];
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  }
  EXPECT_TRUE(biased_neighbors(label_sequences({archs[0]}), {}, options)[0].empty());
  EXPECT_TRUE(biased_neighbors(label_sequences({}), {}, options).empty());
}

}  // namespace
}  // namespace flexnas
