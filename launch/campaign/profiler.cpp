#include "launch/campaign/profiler.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/process.h"
#include "launch/evaluators/evaluator.h"

namespace flexnas::launch {
namespace fs = std::filesystem;

nas::Measurement to_measurement(const ProfileRow& row) {
  nas::Measurement m;
  m.latency_ms = row.latency_ms;
  m.memory_mb = row.memory_mb;
  m.error = row.error;
  return m;
}

ArchitectureProfiler::ArchitectureProfiler(const CampaignConfig& config, CampaignStore& store, const Library& library,
                                           bool quiet)
    : config_(config), store_(store), library_(library), quiet_(quiet) {
  const bool builtin = config.evaluator.type == EvaluatorType::kBuiltin;
  exe_ = builtin && !config.evaluator.builtin.executable.empty() ? config.evaluator.builtin.executable : self_executable();
  for (ProfileRow& r : store.profiles()) cache_[r.hash] = std::move(r);
}

const ProfileRow* ArchitectureProfiler::find(const std::string& hash) const {
  auto it = cache_.find(hash);
  return it == cache_.end() ? nullptr : &it->second;
}

std::vector<std::string> ArchitectureProfiler::command(const std::string& arch_path, const std::string& json_path) const {
  const ProfileConfig& p = config_.objective.profile;
  std::vector<std::string> argv = {exe_,         "model",      "profile",
                                   "--arch",     arch_path,    "--seq-lens",
                                   std::to_string(p.seq_len),  "--batch-size",
                                   std::to_string(p.batch_size), "--repeats",
                                   std::to_string(p.repeats),  "--threads",
                                   std::to_string(p.threads),  "--vocab-size",
                                   std::to_string(p.vocab_size), "--json",
                                   json_path};
  // The hardware the trials train on: the builtin evaluator's precision and device.
  if (config_.evaluator.type == EvaluatorType::kBuiltin) {
    argv.insert(argv.end(), {"--precision", config_.evaluator.builtin.precision});
    argv.insert(argv.end(), {"--device", config_.evaluator.builtin.device});
  }
  return argv;
}

nas::Measurement ArchitectureProfiler::measure(int64_t index) {
  const std::string& hash = library_.hashes[size_t(index)];
  if (const ProfileRow* cached = find(hash)) return to_measurement(*cached);
  const std::string dir = profile_dir(config_.directory, hash);
  std::error_code ec;
  fs::remove_all(dir, ec);  // a measurement cut short by a crash starts again from an empty folder
  fs::create_directories(dir);
  const std::string arch = (fs::path(dir) / "arch.json").string(), json = (fs::path(dir) / "profile.json").string(),
                    log = (fs::path(dir) / "log.txt").string();
  write_file_atomic(arch, nlohmann::json::parse(library_.archs[size_t(index)].to_canonical_string()).dump(2) + "\n");
  ChildLimits limits;
  limits.timeout = config_.trial.timeout;
  limits.memory_limit_mb = config_.trial.memory_limit_mb;
  const ChildResult r = run_child(command(arch, json), {{"OMP_WAIT_POLICY", "passive"}}, dir, log, limits);
  ProfileRow row;
  row.hash = hash;
  row.index = index;
  row.seconds = r.seconds;
  row.time = unix_now();
  if (!r.ok) {
    row.error = r.reason + " (log: " + log + ")";
  } else {
    // `flexnas model profile --json`: rows[0] is the one sequence length asked for.
    try {
      const nlohmann::json j = nlohmann::json::parse(read_file(json));
      const nlohmann::json& first = j.at("rows").at(0);
      if (first.at("seq_len").get<int64_t>() != config_.objective.profile.seq_len)
        row.error = "profile.json measured sequence length " + first.at("seq_len").dump() + ", not " +
                    std::to_string(config_.objective.profile.seq_len) + " (" + json + ")";
      row.latency_ms = first.at("forward_ms").get<double>();
      row.memory_mb = first.at("peak_train_mb").get<double>();
    } catch (const std::exception& e) {
      row.error = std::string("unreadable profile.json: ") + e.what() + " (" + json + ")";
    }
  }
  store_.put_profile(row);
  std::ostringstream note;
  if (row.error.empty())
    note << "#" << index << ": latency " << std::setprecision(4) << row.latency_ms << " ms, memory " << row.memory_mb
         << " MiB";
  else
    note << "#" << index << ": " << row.error;
  store_.log_event(-1, "measured", -1, note.str());
  ++measured_now_;
  cache_[hash] = row;
  return to_measurement(row);
}

void ArchitectureProfiler::record_exclusion(const nas::TrialRecord& t, int64_t seq) {
  const std::string& hash = library_.hashes[size_t(t.index)];
  auto it = cache_.find(hash);
  FLEXNAS_CHECK(it != cache_.end(), "excluded architecture ", t.index, " was never measured");
  ProfileRow& row = it->second;
  row.excluded = t.reason;
  row.exclude_seq = seq;
  row.observed_before = t.observed_before;
  row.kind = t.kind;
  store_.put_profile(row);
  store_.log_event(-1, "excluded", -1, "#" + std::to_string(t.index) + " (" + t.kind + "): " + t.reason);
  if (!quiet_) std::cout << "  [excluded #" << t.index << " " << hash.substr(0, 12) << ": " << t.reason << "]" << std::endl;
}

std::vector<const ProfileRow*> ArchitectureProfiler::exclusions() const {
  std::vector<const ProfileRow*> out;
  for (const auto& [hash, row] : cache_)
    if (row.exclude_seq >= 0) out.push_back(&row);
  std::sort(out.begin(), out.end(), [](const ProfileRow* a, const ProfileRow* b) { return a->exclude_seq < b->exclude_seq; });
  return out;
}

}  // namespace flexnas::launch
