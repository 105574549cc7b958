// Structural distance: the cost table against the reference's (spec Appendix A, with widths
// ascending), hand-computed values, and metric sanity on the test space.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tests/design_space/test_catalog.h"
#include "design_space/distance.h"
#include "design_space/enumeration.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "<test>")); }
DesignSpace space(const std::string& name) { return load_design_space(std::string(FLEXNAS_SOURCE_DIR) + "/examples/" + name, testing::test_catalog()); }

const char* kTiny = R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";

/// Distance between two dicts priced with the test space's table (the reference's indices).
double test_distance(const std::string& a, const std::string& b) {
  return StructuralDistance({parse(a), parse(b)}, space("design_space_test.yaml").ops_list())(0, 1);
}

TEST(OpCostTable, TestSpaceMatchesReference) {
  const OpCostTable table(space("design_space_test.yaml").ops_list());
  const std::vector<std::string> expected{
      "input",         "output",        "add_norm",      "",           "f512",       "f1024",       "",
      "l_h128_p-dft",  "l_h128_p-dct",  "l_h256_p-dft",  "l_h256_p-dct", "",        "sa_h128_p-sdp", "sa_h128_p-wma",
      "sa_h256_p-sdp", "sa_h256_p-wma", "",              "c_h128_p-5", "c_h128_p-9", "c_h256_p-5",  "c_h256_p-9"};
  EXPECT_EQ(table.order(), expected);
  // Ordered by a catalogue (the stand-in answers as the registry does for l, sa, c): the same table.
  EXPECT_EQ(OpCostTable(space("design_space_test.yaml").ops_list(), &testing::test_catalog()).order(), expected);
  EXPECT_EQ(table.index("sa_h128_p-sdp"), 12);
  EXPECT_EQ(table.index("c_h256_p-9"), 20);
}

TEST(OpCostTable, WidthsAscendingInFullSpace) {
  // The reference iterates a Python set here (f512, f1024, f4096, f2048: defect 4).
  const OpCostTable table(space("design_space.yaml").ops_list());
  EXPECT_EQ(table.index("f512"), 4);
  EXPECT_EQ(table.index("f1024"), 5);
  EXPECT_EQ(table.index("f2048"), 6);
  EXPECT_EQ(table.index("f4096"), 7);
  EXPECT_EQ(table.index("l_h128_p-dft"), 9);
  EXPECT_EQ(table.index("c_h512_p-13"), 31);
}

TEST(OpCostTable, HeteroLabelsShareTheSlotOfTheirOp) {
  const OpCostTable table({"sa_h64_p-sdp", "sa_sdp_64", "c_9_32", "c_5_32", "f512"});
  EXPECT_EQ(table.index("sa_sdp_64"), table.index("sa_h64_p-sdp"));
  EXPECT_LT(table.index("c_5_32"), table.index("c_9_32"));
  EXPECT_THROW(OpCostTable({"weird-label"}), ConfigError);
}

// Op ak's labels ('+' and ':' in the parameter): parsed in both spellings, grouped after c, sizes
// ascending, parameters by window then name; the order does not depend on the input order.
TEST(OpCostTable, AttentionKernelLabelsAreParsedAndOrderedDeterministically) {
  std::vector<std::string> labels{"ak_h128_p-qk+convq:9", "c_h128_p-9",       "ak_h128_p-convfixed:4", "ak_h128_p-qk",
                                  "ak_qk+convq:9_128",    "ak_convq:10_64",   "ak_h128_p-qk+convfixed+convq+convk:8",
                                  "sa_h128_p-sdp",        "f512"};
  const OpCostTable table(labels);
  const std::vector<std::string> expected{"input", "output", "add_norm", "", "f512", "", "sa_h128_p-sdp", "", "c_h128_p-9", "",
                                          "ak_convq:10_64", "ak_h128_p-qk", "ak_h128_p-convfixed:4",
                                          "ak_h128_p-qk+convfixed+convq+convk:8", "ak_h128_p-qk+convq:9"};
  EXPECT_EQ(table.order(), expected);
  EXPECT_EQ(table.index("ak_qk+convq:9_128"), table.index("ak_h128_p-qk+convq:9"));  // one op, two spellings
  std::reverse(labels.begin(), labels.end());
  const OpCostTable reversed(labels);
  for (const std::string& label : labels) EXPECT_EQ(reversed.index(label), table.index(label)) << label;
  // Hetero model dicts with ak heads: parsed, hashed, distances defined.
  const Architecture a = parse(R"({"l":1,"h":[128],"f":[[512]],"o":[["ak_qk+convq:9_64","sa_sdp_64"]]})");
  const Architecture b = parse(R"({"l":1,"h":[128],"f":[[512]],"o":[["ak_qk+convfixed+convq+convk:8_64","sa_sdp_64"]]})");
  EXPECT_EQ(a.layers[0].head_list[0].type, "ak");
  EXPECT_EQ(a.layers[0].head_list[0].param, "qk+convq:9");
  EXPECT_EQ(a.layers[0].head_list[0].dim, 64);
  EXPECT_EQ(parse(a.to_canonical_string()), a);
  EXPECT_NE(a.to_canonical_string().find("\"ak_qk+convq:9_64\""), std::string::npos) << a.to_canonical_string();
  EXPECT_GT(structural_distance(a, b), 0.0);
  EXPECT_DOUBLE_EQ(structural_distance(a, b), structural_distance(b, a));
  // Standard: the parameter is written as a string (not all digits).
  const Architecture c = parse(R"({"l":1,"h":[128],"n":[2],"o":["ak"],"f":[[512]],"p":["qk+convq:9"]})");
  EXPECT_NE(c.to_canonical_string().find("\"qk+convq:9\""), std::string::npos) << c.to_canonical_string();
  EXPECT_EQ(parse(c.to_canonical_string()), c);
}

TEST(StructuralDistance, HandCheckedValues) {
  EXPECT_DOUBLE_EQ(test_distance(kTiny, kTiny), 0.0);
  // sdp (12) -> wma (13) on 2 heads x 2 layers.
  EXPECT_NEAR(test_distance(kTiny, R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["wma","wma"]})"),
              4.0, 1e-9);
  // f512 (4) -> f1024 (5) in both layers.
  EXPECT_NEAR(test_distance(kTiny, R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[1024],[1024]],"p":["sdp","sdp"]})"),
              2.0, 1e-9);
  // Two more heads in the first layer: 2 x (12 + two edges 0.2).
  EXPECT_NEAR(test_distance(kTiny, R"({"l":2,"h":[128,128],"n":[4,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})"),
              24.4, 1e-9);
  // Two more f512 in the second layer's chain: 2 x 4 nodes + 0.1 x (2 + 2) edges.
  EXPECT_NEAR(test_distance(kTiny, R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512,512,512]],"p":["sdp","sdp"]})"),
              8.4, 1e-9);
  // Two more layers, equal to the first two: each costs 2 heads (2 x 12) + 2 add_norm (2 x 2) + f512 (4)
  // + 8 edges (0.8) = 32.8; the output's in-edge is re-made (0.2).
  EXPECT_NEAR(test_distance(kTiny, R"({"l":4,"h":[128,128,128,128],"n":[2,2,2,2],"o":["sa","sa","sa","sa"],)"
                                   R"("f":[[512],[512],[512],[512]],"p":["sdp","sdp","sdp","sdp"]})"),
              65.8, 1e-9);
  // sa_h128_p-sdp (12) -> c_h256_p-9 (20) on all heads: 8 per head.
  EXPECT_NEAR(test_distance(kTiny, R"({"l":2,"h":[256,256],"n":[2,2],"o":["c","c"],"f":[[512],[512]],"p":[9,9]})"),
              32.0, 1e-9);
}

TEST(StructuralDistance, LayerOrderMatters) {
  // Swapping two different layers costs something; the alignment may not reorder.
  const std::string a = R"({"l":2,"h":[128,256],"n":[2,2],"o":["sa","l"],"f":[[512],[1024]],"p":["sdp","dct"]})";
  const std::string b = R"({"l":2,"h":[256,128],"n":[2,2],"o":["l","sa"],"f":[[1024],[512]],"p":["dct","sdp"]})";
  EXPECT_GT(test_distance(a, b), 0.0);
  EXPECT_DOUBLE_EQ(test_distance(a, b), test_distance(b, a));
}

TEST(StructuralDistance, HeteroHeadsMatchedOptimally) {
  // {sa_sdp_64, l_dft_64} vs {l_dft_64}: delete one sa head only.
  const Architecture a = parse(R"({"l":1,"h":[128],"o":[["sa_sdp_64","l_dft_64"]],"f":[[512]]})");
  const Architecture b = parse(R"({"l":1,"h":[128],"o":[["l_dft_64"]],"f":[[512]]})");
  const StructuralDistance d({a, b});
  // table: input output add_norm '' f512 '' l_dft_64 '' sa_sdp_64 -> sa at 8; cost 8 + 2 edges.
  EXPECT_EQ(d.table().index("sa_sdp_64"), 8);
  EXPECT_NEAR(d(0, 1), 8.2, 1e-9);
}

TEST(StructuralDistance, MetricSanityOnTestSpace) {
  const DesignSpace s = space("design_space_test.yaml");
  const Enumerator e(s, EnumerationSettings{});
  std::vector<Architecture> archs;
  for (size_t i = 0; i < size_t(e.count()); ++i) archs.push_back(e.at(BigCount(i)));
  const StructuralDistance d(archs, s.ops_list());
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<size_t> pick(0, archs.size() - 1);
  int violations = 0;
  for (int t = 0; t < 20000; ++t) {
    const size_t a = pick(rng), b = pick(rng), c = pick(rng);
    EXPECT_DOUBLE_EQ(d(a, b), d(b, a));
    if (a != b) EXPECT_GT(d(a, b), 0.0) << a << " " << b;  // distinct graphs (hashes are distinct)
    if (d(a, c) > d(a, b) + d(b, c) + 1e-9) ++violations;
  }
  EXPECT_EQ(violations, 0);
  EXPECT_DOUBLE_EQ(d(5, 5), 0.0);
}

}  // namespace
}  // namespace flexnas
