#pragma once
// Helpers shared by the datasets tests: a fresh temp directory per test, small files, a synthetic
// corpus (seeded) big enough to train a tiny SentencePiece model in well under a second.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "datasets/splits.h"

namespace flexnas::datasets::testing {

inline std::string test_data(const std::string& rel) { return std::string(FLEXNAS_TEST_DATA) + "/datasets/" + rel; }

/// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // pid + counter: ctest runs the discovered tests of one binary as parallel processes.
    static int counter = 0;
    std::string name = "flexnas-ds-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                       (info ? std::string(info->test_suite_name()) + "-" + info->name() : "suite");
    for (char& c : name)
      if (c == '/') c = '_';
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << content;
}

/// `docs` documents of `sentences` sentences of 4-12 words from a fixed 120-word vocabulary.
inline std::string synthetic_corpus(int docs, int sentences, uint64_t seed = 7) {
  static const char* stems[] = {"the", "a", "jury", "court", "city", "said", "found", "report", "election", "money",
                                "house", "river", "music", "story", "night", "morning", "people", "state", "school",
                                "church", "water", "light", "paper", "market", "garden", "letter", "window", "friend"};
  static const char* suffixes[] = {"", "s", "ed", "ing", "er"};
  Rng rng(seed);
  std::string out;
  for (int d = 0; d < docs; ++d) {
    if (d > 0) out += "\n";
    for (int s = 0; s < sentences; ++s) {
      const auto n = 4 + rng.below(9);
      for (uint64_t w = 0; w < n; ++w) {
        out += std::string(w ? " " : "") + stems[rng.below(28)] + suffixes[rng.below(5)];
      }
      out += " .\n";
    }
  }
  return out;
}

/// Tiny GLUE TSVs in the distribution's format for all nine tasks under root/<Task dir>/ (readers_test.cpp).
void write_glue(const std::string& root);

/// Expects `fn` to throw E whose message contains every string of `parts`.
template <typename E, typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing '" << parts.front() << "'";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in: " << what;
  }
}

}  // namespace flexnas::datasets::testing
