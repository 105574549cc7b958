#pragma once
// Progress for long work: a redrawn bar with rate and ETA on a terminal, a plain line every few
// seconds otherwise (logs, CI). Thread-safe `advance`.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace flexnas {

class Progress {
 public:
  /// `total` = 0 means unknown. `unit` names what is counted ("graphs", "steps").
  Progress(std::string label, uint64_t total, std::string unit = "");
  ~Progress();
  void advance(uint64_t n = 1);
  /// Extra text shown after the counters (e.g. "loss 3.21").
  void set_note(const std::string& note);
  /// Prints the final line (also done by the destructor).
  void finish();
  /// False disables all output (e.g. --quiet, tests).
  static void set_enabled(bool enabled);

 private:
  void draw(bool final_line);

  std::string label_, unit_, note_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mutex_;
  bool tty_;
  bool finished_ = false;
};

/// "1.2 s", "3 min 04 s", "2 h 05 min".
std::string format_duration(double seconds);

}  // namespace flexnas
