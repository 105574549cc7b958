// Library files: round trip, reading a reference-made library, and one located message per kind
// of bad content.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "tests/design_space/test_catalog.h"
#include "design_space/arch_graph.h"
#include "design_space/enumeration.h"
#include "design_space/library.h"

namespace flexnas {
namespace {

const char* kTinyHash = "79cadebed0d9211f265df75c88666c35c7b3b2e3823206c928f099d3a0faa444";
const char* kTinyDict = R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";

std::string test_space_path() { return std::string(FLEXNAS_SOURCE_DIR) + "/examples/design_space_test.yaml"; }

/// The first `n` architectures of the test space, with every field filled.
Library small_library(size_t n) {
  const DesignSpace space = load_design_space(test_space_path(), testing::test_catalog());
  const Enumerator e(space, EnumerationSettings{});
  Library lib;
  lib.dataset = "sst2";
  lib.design_space = space.architecture_json;
  lib.ops_list = space.ops_list();
  lib.num_neighbors = 3;
  for (size_t i = 0; i < n; ++i) {
    lib.archs.push_back(e.at(BigCount(i)));
    lib.hashes.push_back(architecture_hash(lib.archs.back()));
  }
  lib.pad_to_size();
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < 4; ++k) lib.embeddings[i].push_back(float(i) * 0.1f + float(k) / 3.0f);
    for (size_t k = 1; k <= 3; ++k) lib.neighbors[i].push_back(lib.hashes[(i + k) % n]);
  }
  lib.performances[1] = 0.7345678901234;
  lib.meta["enumeration"] = EnumerationSettings{}.to_json();
  lib.meta["seed"] = 7;
  return lib;
}

std::string error_of(const std::string& text, const LibraryLoadOptions& options = {}) {
  try {
    parse_library(text, "lib.json", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

/// A reference-style library of BERT-Tiny, with `replace` substituted for `what`.
std::string reference_text(const std::string& what = "", const std::string& replace = "") {
  std::string text = std::string(R"({"dataset": null, "design_space": null, "ops_list": ["input"], "num_neighbors": 100,
"model_dicts": [)") + kTinyDict + R"(],
"hashes": [")" + kTinyHash + R"("],
"embeddings": [null], "neighbors": [null], "performances": [null]})";
  if (!what.empty()) {
    const auto at = text.find(what);
    EXPECT_NE(at, std::string::npos) << what;
    text.replace(at, what.size(), replace);
  }
  return text;
}

TEST(Library, RoundTripKeepsEverything) {
  const Library lib = small_library(40);
  const Library back = parse_library(library_to_string(lib), "round.json");
  EXPECT_TRUE(libraries_equal(lib, back));
  EXPECT_EQ(back.embedding_dim(), 4);
  EXPECT_EQ(back.num_performances(), 1u);
  EXPECT_EQ(back.find(lib.hashes[17]), 17);
  EXPECT_EQ(back.find("nope"), -1);
  // Saving the loaded copy gives the same bytes.
  EXPECT_EQ(library_to_string(back), library_to_string(lib));
}

TEST(Library, SaveIsAtomicAndLoads) {
  const auto dir = std::filesystem::temp_directory_path() / ("flexnas_lib_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "lib.json").string();
  const Library lib = small_library(10);
  save_library(lib, path);
  EXPECT_TRUE(libraries_equal(load_library(path, {/*verify_hashes=*/true}), lib));
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u);  // no temp file left behind
  std::filesystem::remove_all(dir);
}

TEST(Library, ReadsReferenceLibrary) {
  const Library lib = parse_library(reference_text(), "ref.json");
  ASSERT_EQ(lib.size(), 1u);
  EXPECT_FALSE(lib.dataset.has_value());
  EXPECT_TRUE(lib.design_space.is_null());
  EXPECT_EQ(lib.hashes[0], kTinyHash);
  EXPECT_EQ(lib.archs[0].layers[0].op, "sa");
  EXPECT_TRUE(lib.embeddings[0].empty());
  EXPECT_TRUE(lib.neighbors[0].empty());
  EXPECT_FALSE(lib.performances[0].has_value());
  EXPECT_TRUE(lib.meta.is_null());
  EXPECT_EQ(lib.num_neighbors, 100);
  // The reference writes conv kernels as integers.
  const Library conv = parse_library(reference_text("\"sdp\",\"sdp\"", "9,9").replace(0, 0, ""), "ref.json");
  EXPECT_EQ(conv.archs[0].layers[1].param, "9");
}

TEST(Library, VerifyHashesCatchesWrongHash) {
  const std::string text = reference_text("\"n\":[2,2]", "\"n\":[4,2]");
  EXPECT_NO_THROW(parse_library(text, "lib.json"));
  EXPECT_NE(error_of(text, {true}).find("lib.json: error: hashes[0]: '79cadebed"), std::string::npos) << error_of(text, {true});
}

struct BadCase {
  std::string what, replace, message;
};

TEST(Library, BadContentMessages) {
  const std::vector<BadCase> cases = {
      {"\"num_neighbors\": 100,", "\"num_neighbors\": 100,,", "lib.json:1:85: error: invalid JSON: syntax error while parsing object key - unexpected ','"},
      {"\"dataset\": null", "\"datasett\": null", "lib.json: error: datasett: unknown key; allowed: dataset"},
      {"\"dataset\": null", "\"dataset\": 3", "lib.json: error: dataset: expected null or a dataset name, got a number 3"},
      {"\"num_neighbors\": 100", "\"num_neighbors\": -1", "lib.json: error: num_neighbors: expected a positive integer"},
      {"\"h\":[128,128]", "\"h\":[128,128,128]",
       "lib.json: error: model_dicts[0].h: expected 2 entries (one per layer, l = 2), got 3"},
      {"\"n\":[2,2]", "\"n\":[2,0]", "lib.json: error: model_dicts[0].n[1]: number of heads must be a positive integer"},
      {std::string("[") + kTinyDict + "]", "[7]", "lib.json: error: model_dicts[0]: expected a model dict"},
      {"\"model_dicts\": [", "\"model_dicts\": 5, \"x\": [", "lib.json: error: model_dicts: expected a list of model dicts, got a number 5"},
      {std::string("\"") + kTinyHash + "\"", "\"abc\"", "lib.json: error: hashes[0]: expected a 64-digit lowercase hex SHA-256 hash, got 'abc'"},
      {std::string("[\"") + kTinyHash + "\"]", "[]", "lib.json: error: hashes: 0 entries, but model_dicts has 1"},
      {"\"hashes\"", "\"hashez\"", "lib.json: error: hashez: unknown key"},
      {"\"embeddings\": [null]", "\"embeddings\": [[1, \"x\"]]", "lib.json: error: embeddings[0][1]: expected a number, got a string"},
      {"\"embeddings\": [null]", "\"embeddings\": [null, null]", "lib.json: error: embeddings: 2 entries, but model_dicts has 1"},
      {"\"embeddings\": [null]", "\"embeddings\": {}", "lib.json: error: embeddings: expected a list (one embedding or null per model dict), got an object"},
      {"\"neighbors\": [null]", "\"neighbors\": [[\"" + std::string(64, 'a') + "\"]]",
       "lib.json: error: neighbors[0][0]: 'aaaa"},
      {"\"performances\": [null]", "\"performances\": [\"high\"]", "lib.json: error: performances[0]: expected null or a number, got a string"},
      {"\"dataset\": null", "\"dataset\": null, \"format\": \"other\"", "lib.json: error: format: expected \"flexnas-library\""},
      {"\"dataset\": null", "\"dataset\": null, \"format_version\": 9", "lib.json: error: format_version: 9 is newer than this flexnas reads"},
      {"\"dataset\": null", "\"dataset\": null, \"dataset\": null", "lib.json: error: dataset: duplicate key"},
      {"\"design_space\": null", "\"design_space\": {\"hidden_size\": []}", "lib.json: error: design_space: not a valid design space"},
  };
  for (const BadCase& c : cases) {
    const std::string message = error_of(reference_text(c.what, c.replace));
    EXPECT_EQ(message.rfind(c.message, 0), 0u) << "case '" << c.replace << "'\n got: " << message;
  }
  EXPECT_EQ(error_of("[1, 2]").rfind("lib.json: error: expected a library object", 0), 0u) << error_of("[1, 2]");
  const std::string missing = error_of(R"({"model_dicts": []})");
  EXPECT_EQ(missing, "lib.json: error: hashes: missing required key (one SHA-256 hash per model dict)");
}

TEST(Library, DuplicateHashAndEmbeddingDimension) {
  Library lib = small_library(5);
  lib.hashes[3] = lib.hashes[1];
  EXPECT_EQ(error_of(library_to_string(lib)).rfind("lib.json: error: hashes[3]: duplicate of hashes[1]", 0), 0u);
  lib = small_library(5);
  lib.embeddings[2].pop_back();
  EXPECT_EQ(error_of(library_to_string(lib)), "lib.json: error: embeddings[2]: 3 values, expected 4 (as embeddings[0])");
}

}  // namespace
}  // namespace flexnas
