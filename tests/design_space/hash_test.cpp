// The reference's graph and WL hash, pinned to the test vectors of spec Appendix A.
#include <gtest/gtest.h>

#include "tests/design_space/test_catalog.h"
#include "design_space/arch_graph.h"
#include "design_space/enumeration.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "<test>")); }

const char* kBertTiny = R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";
const char* kFlexiBertMini =
    R"({"l":4,"o":["sa","sa","l","l"],"h":[256,256,128,128],"n":[2,2,4,4],)"
    R"("f":[[512,512,512],[512,512,512],[1024],[1024]],"p":["sdp","sdp","dct","dct"]})";
const char* kHetero =
    R"({"l":2,"o":[["sa_sdp_64","l_dft_64"],["c_9_32","sa_wma_32","sa_sdp_32"]],"h":[128,128],"f":[[512],[512,512]]})";

TEST(ArchGraph, BertTinyLabelsAndEdges) {
  const ArchGraph g = ArchGraph::from_architecture(parse(kBertTiny));
  EXPECT_EQ(g.num_vertices(), 12u);
  EXPECT_EQ(g.num_edges(), 17u);
  const std::vector<std::string> labels{"input", "sa_h128_p-sdp", "sa_h128_p-sdp", "add_norm", "f512", "add_norm",
                                        "sa_h128_p-sdp", "sa_h128_p-sdp", "add_norm", "f512", "add_norm", "output"};
  EXPECT_EQ(g.labels(), labels);
  const std::vector<std::pair<int, int>> edges{{0, 1}, {0, 2}, {0, 3}, {1, 3}, {2, 3},  {3, 4},  {3, 5},  {4, 5}, {5, 6},
                                               {5, 7}, {5, 8}, {6, 8}, {7, 8}, {8, 9}, {8, 10}, {9, 10}, {10, 11}};
  EXPECT_EQ(g.edges(), edges);
}

TEST(ArchGraph, BertTinyHashes) {
  const ArchGraph g = ArchGraph::from_architecture(parse(kBertTiny));
  EXPECT_EQ(g.hash(), "79cadebed0d9211f265df75c88666c35c7b3b2e3823206c928f099d3a0faa444");
  EXPECT_EQ(g.hash(HashAlgorithm::kMd5), "a96ac76eaa6273fe0004dd6339e234c4");
}

TEST(ArchGraph, FlexiBertMiniHashes) {
  const ArchGraph g = ArchGraph::from_architecture(parse(kFlexiBertMini));
  EXPECT_EQ(g.num_vertices(), 30u);
  EXPECT_EQ(g.num_edges(), 45u);
  EXPECT_EQ(g.hash(), "312272343b02a475f7a6d1e77cd6683737bb73ffd4a5d25970e7062c281f3aa2");
  EXPECT_EQ(g.hash(HashAlgorithm::kMd5), "d91e3ca07be2a7fe833f94c6802f7a05");
}

TEST(ArchGraph, HeteroMd5WithAndWithoutSalt) {
  const Architecture arch = parse(kHetero);
  ASSERT_TRUE(arch.is_hetero());
  const ArchGraph g = ArchGraph::from_architecture(arch);
  EXPECT_EQ(g.num_vertices(), 14u);
  EXPECT_EQ(g.hash(HashAlgorithm::kMd5), "23b586156d312dacb70d2d22135d9010");
  EXPECT_EQ(architecture_hash_salted(arch, HashAlgorithm::kMd5), "f64cd7a0162b0030d0cf229049d26b1b");
}

TEST(ArchGraph, LastEntriesOfTestAndSmallLibraries) {
  const DesignSpace test = load_design_space(FLEXNAS_SOURCE_DIR "/examples/design_space_test.yaml", testing::test_catalog());
  const Enumerator e_test(test, EnumerationSettings{});
  EXPECT_EQ(architecture_hash(e_test.at(e_test.count() - 1)),
            "4255003e49c836ebaf100c7b5060e30b3082f4132e4867a2efa672355ed32e9d");
  EXPECT_EQ(architecture_hash(e_test.at(0)), "79cadebed0d9211f265df75c88666c35c7b3b2e3823206c928f099d3a0faa444");
  const DesignSpace small = load_design_space(FLEXNAS_SOURCE_DIR "/examples/design_space_small.yaml", testing::test_catalog());
  const Enumerator e_small(small, EnumerationSettings{});
  EXPECT_EQ(architecture_hash(e_small.at(e_small.count() - 1)),
            "dde9b503b930bd4a2abf79824843fd1c3e9490c41af99159694d6009dc04baed");
}

}  // namespace
}  // namespace flexnas
