// The optional architecture.pooling block of a design space (Funnel pooling, seed 003): parsing,
// located errors, and the enumeration bijection with pooling as a per-stack choice.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tests/design_space/test_catalog.h"
#include "design_space/arch_graph.h"
#include "design_space/distance.h"
#include "design_space/enumeration.h"
#include "design_space/error.h"

namespace flexnas {
namespace {

const std::string kSpace = R"(architecture:
  hidden_size: [16, 32]
  num_heads: [2]
  encoder_layers: [2, 6]
  operation_types: [sa, l]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [32]
  operation_parameters:
    sa: [sdp]
    l: [dct]
)";

EnumerationSettings lps2() {
  EnumerationSettings s;
  s.layers_per_stack = 2;
  return s;
}

std::string error_of(const std::string& yaml) {
  try {
    parse_design_space(yaml, "space.yaml", testing::test_catalog());
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(PoolingSpace, CountsAndEveryIndexRoundTrips) {
  const DesignSpace plain = parse_design_space(kSpace, "space.yaml", testing::test_catalog());
  const DesignSpace pooled = parse_design_space(kSpace + "  pooling: {stride: [1, 2], decoder: 1}\n", "space.yaml", testing::test_catalog());
  EXPECT_EQ(pooled.pool_strides, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(pooled.pool_settings.decoder, 1);
  EXPECT_TRUE(pooled.pool_settings.q_only);
  Enumerator base(plain, lps2()), pools(pooled, lps2());
  // Depth 2 (one stack) has no stack to pool; depth 6 (three stacks) has 2^2 pooling choices.
  ASSERT_EQ(base.count_per_depth().size(), 2u);
  EXPECT_EQ(pools.count_per_depth()[0], base.count_per_depth()[0]);
  EXPECT_EQ(pools.count_per_depth()[1], 4 * base.count_per_depth()[1]);
  std::set<std::string> seen;
  for (BigCount i = 0; i < pools.count(); ++i) {
    const Architecture arch = pools.at(i);
    EXPECT_EQ(pools.index_of(arch), i);
    EXPECT_TRUE(seen.insert(arch.to_canonical_string()).second);
    if (arch.pool.active()) {
      EXPECT_EQ(arch.pool.decoder, 1);
      for (size_t l = 0; l < arch.layers.size(); ++l)
        if (l != 2 && l != 4) EXPECT_EQ(arch.pool.stride[l], 1);
    }
  }
  // The first pooling choice (every stride 1) is the space without pooling, in its order.
  const BigCount offset = base.count_per_depth()[0];
  for (BigCount i = 0; i < base.count_per_depth()[1]; ++i)
    EXPECT_EQ(pools.at(offset + i), base.at(offset + i));
  // Hashes tell the pooling choices apart.
  std::set<std::string> hashes;
  for (BigCount i = 0; i < pools.count(); ++i) hashes.insert(architecture_hash(pools.at(i)));
  EXPECT_EQ(hashes.size(), size_t(pools.count()));
}

TEST(PoolingSpace, ArchitecturesOutsideThePoolingChoicesAreRejectedWithAReason) {
  const DesignSpace pooled = parse_design_space(kSpace + "  pooling: {stride: [1, 2]}\n", "space.yaml", testing::test_catalog());
  Enumerator pools(pooled, lps2());
  Architecture arch = pools.at(pools.count() - 1);
  ASSERT_TRUE(arch.pool.active());
  Architecture inside_stack = arch;
  inside_stack.pool.stride = {1, 1, 1, 2, 1, 1};
  EXPECT_THROW(pools.index_of(inside_stack), ConfigError);
  Architecture other_settings = arch;
  other_settings.pool.q_only = false;
  EXPECT_THROW(pools.index_of(other_settings), ConfigError);
  Architecture big_stride = arch;
  big_stride.pool.stride = {1, 1, 4, 1, 1, 1};
  EXPECT_THROW(pools.index_of(big_stride), ConfigError);
  Enumerator plain(parse_design_space(kSpace, "space.yaml", testing::test_catalog()), lps2());
  try {
    plain.index_of(arch);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the space has no architecture.pooling block"), std::string::npos) << e.what();
  }
}

TEST(PoolingSpace, StructuralDistanceSeesPoolingChoices) {
  const DesignSpace pooled = parse_design_space(kSpace + "  pooling: {stride: [1, 2, 4]}\n", "space.yaml", testing::test_catalog());
  Enumerator pools(pooled, lps2());
  // The same layers (last index of depth 6's first pooling block) under three pooling choices.
  const BigCount base = pools.count_per_depth()[0], per = pools.count_per_depth()[1] / 9;
  const Architecture plain = pools.at(base + per - 1);
  const Architecture late2 = pools.at(base + 2 * per - 1);   // stack 3 pools by 2
  const Architecture late4 = pools.at(base + 3 * per - 1);   // stack 3 pools by 4
  const Architecture both = pools.at(base + 5 * per - 1);    // stacks 2 and 3 pool by 2
  ASSERT_FALSE(plain.pool.active());
  ASSERT_TRUE(late2.pool.active() && late4.pool.active() && both.pool.active());
  ASSERT_EQ(late2.layers, plain.layers);
  StructuralDistance d({plain, late2, late4, both});
  EXPECT_GT(d(0, 1), 0.0);  // pooling or not
  EXPECT_GT(d(1, 2), 0.0);  // stride 2 or 4
  EXPECT_GT(d(1, 3), 0.0);  // one pooling or two
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j) EXPECT_DOUBLE_EQ(d(i, j), d(j, i));
  EXPECT_LT(d(1, 2), d(0, 2));  // pooling by 2 is nearer pooling by 4 than no pooling is
  // Without pooled models the cost table is the reference's.
  StructuralDistance reference({plain});
  for (const auto& label : reference.table().order()) EXPECT_EQ(label.rfind("pool_s", 0), std::string::npos);
}

TEST(PoolingSpace, BadBlocksAreLocatedErrors) {
  EXPECT_NE(error_of(kSpace + "  pooling: {stride: [1, 16]}\n").find("pooling stride must be 1 (no pooling) .. 8, got 16"),
            std::string::npos);
  EXPECT_NE(error_of(kSpace + "  pooling: {stride: [0, 2]}\n").find("expected a positive integer"), std::string::npos);
  EXPECT_NE(error_of(kSpace + "  pooling: {stride: [2], window: 3}\n").find("unknown key 'window'"), std::string::npos);
  EXPECT_NE(error_of(kSpace + "  pooling: {stride: [2], decoder: -1}\n").find("decoder layers must be 0..12, got -1"),
            std::string::npos);
  EXPECT_NE(error_of(kSpace + "  pooling: [1, 2]\n").find("expected a map"), std::string::npos);
  const std::string located = error_of(kSpace + "  pooling: {stride: [1, 16]}\n");
  EXPECT_EQ(located.rfind("space.yaml:11:", 0), 0u) << located;
}

// Fuzz-style: seeded random pooling blocks (values, types, keys, flow and block style). Parsing
// either succeeds, and then every index round-trips, or raises a ConfigError located in the file.
TEST(PoolingSpace, RandomBlocksParseOrFailLocated) {
  std::mt19937 rng(61206);
  auto pick = [&](int n) { return int(std::uniform_int_distribution<int>(0, n - 1)(rng)); };
  const std::vector<std::string> values = {"1", "2", "0", "-1", "9", "8", "true", "no", "abc", "[]", "[1, 2]", "{}", "~", "2.5"};
  const std::vector<std::string> keys = {"stride", "q_only", "separate_cls", "decoder", "window", "stride"};
  int parsed = 0, failed = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string block = "  pooling:\n";
    const int n_keys = pick(4);
    block += "    stride: [";
    for (int k = 0, n = 1 + pick(3); k < n; ++k) block += (k ? ", " : "") + values[size_t(pick(6))];
    block += "]\n";
    for (int k = 0; k < n_keys; ++k) block += "    " + keys[size_t(1 + pick(5))] + ": " + values[size_t(pick(int(values.size())))] + "\n";
    if (pick(10) == 0) block = "  pooling: " + values[size_t(pick(int(values.size())))] + "\n";
    try {
      const DesignSpace space = parse_design_space(kSpace + block, "space.yaml", testing::test_catalog());
      Enumerator e(space, lps2());
      for (BigCount i = 0; i < e.count(); i += 97) EXPECT_EQ(e.index_of(e.at(i)), i) << block;
      ++parsed;
    } catch (const ConfigError& err) {
      ++failed;
      EXPECT_EQ(std::string(err.what()).rfind("space.yaml:", 0), 0u) << err.what() << "\n" << block;
    } catch (const std::exception& err) {
      ADD_FAILURE() << "not a ConfigError: " << err.what() << "\n" << block;
    }
  }
  EXPECT_GT(parsed, 20);
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace flexnas
