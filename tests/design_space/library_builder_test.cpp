// The library pipeline end to end: the test space (reference order and hashes), a sample of the
// full space, NAS-Bench-BERT, and explicit lists with duplicates.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/design_space/test_catalog.h"
#include "design_space/arch_graph.h"
#include "design_space/library_builder.h"

namespace flexnas {
namespace {

std::string example(const std::string& name) { return std::string(FLEXNAS_SOURCE_DIR) + "/examples/" + name; }

LibraryBuildOptions quiet_options() {
  LibraryBuildOptions o;
  o.progress = false;
  return o;
}

TEST(LibraryBuilder, TestSpaceInReferenceOrder) {
  const DesignSpace space = load_design_space(example("design_space_test.yaml"), testing::test_catalog());
  LibraryBuildReport report;
  const Library lib = build_library(space, quiet_options(), &report);
  ASSERT_EQ(lib.size(), 9312u);
  EXPECT_EQ(lib.hashes.front(), "79cadebed0d9211f265df75c88666c35c7b3b2e3823206c928f099d3a0faa444");
  EXPECT_EQ(lib.hashes.back(), "4255003e49c836ebaf100c7b5060e30b3082f4132e4867a2efa672355ed32e9d");
  EXPECT_EQ(lib.ops_list.size(), 17u);
  EXPECT_EQ(lib.embedding_dim(), 16);
  for (size_t i = 0; i < lib.size(); i += 97) {
    ASSERT_EQ(lib.neighbors[i].size(), 100u);
    EXPECT_EQ(std::count(lib.neighbors[i].begin(), lib.neighbors[i].end(), lib.hashes[i]), 0);
  }
  EXPECT_EQ(lib.meta["distance"]["method"], "layer-alignment-ged");
  EXPECT_EQ(lib.meta["enumeration"]["layers_per_stack"], 2);
  EXPECT_GT(report.embedding.spearman, 0.9);
  // The file round-trips.
  EXPECT_TRUE(libraries_equal(parse_library(library_to_string(lib), "lib.json"), lib));
}

TEST(LibraryBuilder, SampleOfTheFullSpace) {
  const DesignSpace space = load_design_space(example("design_space.yaml"), testing::test_catalog());
  LibraryBuildOptions o = quiet_options();
  o.sample = 400;
  o.neighbors = 10;
  o.seed = 3;
  LibraryBuildReport report;
  const Library lib = build_library(space, o, &report);
  EXPECT_EQ(to_string_big(report.space_size), "432653508");
  ASSERT_EQ(lib.size(), 400u);
  // Library order is space order: indices ascend.
  const Enumerator e(space, o.enumeration);
  BigCount previous = 0;
  for (size_t i = 0; i < lib.size(); ++i) {
    const BigCount index = e.index_of(lib.archs[i]);
    if (i > 0) EXPECT_GT(index, previous);
    previous = index;
  }
  EXPECT_EQ(lib.meta["source"]["sample"], 400);
  // Same seed, same library.
  EXPECT_TRUE(libraries_equal(build_library(space, o), lib));
  o.sample = 0;
  EXPECT_THROW(build_library(space, o), ConfigError);
}

TEST(LibraryBuilder, NasBenchBertImport) {
  const ConfigNode root = ConfigNode::load_file(example("nas-bench-bert/BERT_benchmark.json"));
  std::vector<Architecture> archs;
  for (const ConfigNode& item : root.items()) archs.push_back(architecture_from_config(item));
  ASSERT_EQ(archs.size(), 500u);
  std::vector<std::optional<double>> glue;
  for (const ConfigNode& item : root.items()) glue.push_back(item["scores"]["glue"].as_double());
  // The benchmark trained 9 of its 491 architectures twice: merged by default, refused on request.
  LibraryBuildOptions o = quiet_options();
  o.duplicates = DuplicatePolicy::kError;
  EXPECT_THROW(build_library_from_archs(archs, "BERT_benchmark.json", o, nullptr, glue), ConfigError);
  o.duplicates = DuplicatePolicy::kMerge;
  LibraryBuildReport report;
  const Library lib = build_library_from_archs(archs, "BERT_benchmark.json", o, &report, glue);
  ASSERT_EQ(lib.size(), 491u);
  ASSERT_EQ(report.merged.size(), 9u);
  EXPECT_EQ(report.merged[0], std::make_pair(size_t(222), size_t(60)));  // record 222 repeats record 60
  // Merged performance = mean of the two runs (67.75875 and 65.74).
  const int64_t at = lib.find(architecture_hash(archs[60]));
  ASSERT_GE(at, 0);
  EXPECT_NEAR(*lib.performances[size_t(at)], (67.75875 + 65.74) / 2, 1e-9);
  EXPECT_EQ(lib.num_performances(), 491u);
  EXPECT_EQ(lib.meta["source"]["entries"], 500);
  std::vector<std::string> sorted = lib.hashes;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());  // 500 distinct hashes
  EXPECT_TRUE(lib.design_space.is_null());
  EXPECT_EQ(lib.ops_list.front(), "input");
  EXPECT_EQ(lib.ops_list.back(), "output");
  EXPECT_EQ(lib.neighbors[0].size(), 100u);
  // Every NAS-Bench-BERT architecture belongs to the FlexiBERT test space at lps 1.
  const DesignSpace space = load_design_space(example("design_space_test.yaml"), testing::test_catalog());
  EnumerationSettings lps1;
  lps1.layers_per_stack = 1;
  const Enumerator e(space, lps1);
  for (const Architecture& a : archs) EXPECT_TRUE(e.contains(a));
}

TEST(LibraryBuilder, DuplicateArchitecturesAreNamed) {
  const DesignSpace space = load_design_space(example("design_space_test.yaml"), testing::test_catalog());
  const Enumerator e(space, EnumerationSettings{});
  std::vector<Architecture> archs{e.at(0), e.at(1), e.at(0)};
  LibraryBuildOptions o = quiet_options();
  o.duplicates = DuplicatePolicy::kError;
  try {
    build_library_from_archs(archs, "list.json", o);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()).rfind("list.json: error: [2]: the same architecture as entry [0]", 0), 0u)
        << error.what();
  }
  EXPECT_THROW(build_library_from_archs({}, "empty.json", quiet_options()), ConfigError);
  o.duplicates = DuplicatePolicy::kMerge;
  LibraryBuildReport report;
  EXPECT_EQ(build_library_from_archs(archs, "list.json", o, &report).size(), 2u);
  EXPECT_EQ(report.merged, (std::vector<std::pair<size_t, size_t>>{{2, 0}}));
}

TEST(LibraryBuilder, TinyLibraries) {
  const DesignSpace space = load_design_space(example("design_space_test.yaml"), testing::test_catalog());
  const Enumerator e(space, EnumerationSettings{});
  const Library one = build_library_from_archs({e.at(5)}, "one", quiet_options());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one.neighbors[0].empty());
  EXPECT_EQ(one.embeddings[0].size(), 16u);
  const Library three = build_library_from_archs({e.at(5), e.at(6), e.at(7000)}, "three", quiet_options());
  for (const auto& row : three.neighbors) EXPECT_EQ(row.size(), 2u);
  EXPECT_EQ(three.num_neighbors, 100);
}

}  // namespace
}  // namespace flexnas
