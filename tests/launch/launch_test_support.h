#pragma once
// Shared by the launch test binaries: scratch folders, the 80-record NAS-Bench-BERT sample library,
// and writing + loading a campaign.yaml.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "design_space/atomic_file.h"
#include "design_space/config_node.h"
#include "design_space/library_builder.h"
#include "launch/campaign_config.h"

namespace flexnas::launch::test_support {

inline const std::string kSample = std::string(FLEXNAS_TEST_DATA) + "/launch/nas_bench_bert_sample.json";

/// A fresh, empty folder under /tmp private to this test process.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("flexnas_launch_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

/// A library of the 80 NAS-Bench-BERT sample records (built once per process).
inline const std::string& sample_library() {
  static const std::string path = [] {
    const ConfigNode root = ConfigNode::load_file(kSample);
    std::vector<Architecture> archs;
    for (const ConfigNode& item : root.items()) archs.push_back(architecture_from_config(item));
    LibraryBuildOptions b;
    b.neighbors = 10;
    b.progress = false;
    const std::string out = (temp_dir("library") / "lib.json").string();
    save_library(build_library_from_archs(std::move(archs), kSample, b), out);
    return out;
  }();
  return path;
}

/// Writes campaign.yaml into `dir` (created if needed) and parses it.
inline CampaignConfig write_config(const std::filesystem::path& dir, const std::string& body) {
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "campaign.yaml").string();
  write_file_atomic(path, body);
  return load_campaign_config(path);
}

}  // namespace flexnas::launch::test_support
