#include "design_space/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace flexnas {
namespace {
std::atomic<bool> g_enabled{true};
}

void Progress::set_enabled(bool enabled) { g_enabled = enabled; }

std::string format_duration(double seconds) {
  char buf[64];
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%d min %02d s", int(seconds) / 60, int(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%d h %02d min", int(seconds) / 3600, (int(seconds) % 3600) / 60);
  }
  return buf;
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  tty_ = ::isatty(STDERR_FILENO);
}

Progress::~Progress() { finish(); }

void Progress::set_note(const std::string& note) {
  std::lock_guard<std::mutex> lock(mutex_);
  note_ = note;
}

void Progress::advance(uint64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.2 : 5.0)) return;
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  if (!g_enabled) return;
  const uint64_t done = done_;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  char counts[160];
  if (total_ > 0) {
    const double frac = std::min(1.0, double(done) / double(total_));
    const double eta = rate > 0 ? (total_ - std::min(done, total_)) / rate : NAN;
    std::snprintf(counts, sizeof counts, "%llu/%llu %s (%5.1f%%) %.1f %s/s, %s %s",
                  (unsigned long long)done, (unsigned long long)total_, unit_.c_str(), 100 * frac, rate,
                  unit_.empty() ? "it" : unit_.c_str(), final_line ? "took" : "ETA",
                  format_duration(final_line ? elapsed : eta).c_str());
    if (tty_) {
      const int width = 24;
      const int filled = int(frac * width);
      std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
      std::cerr << '\r' << label_ << ' ' << bar << counts << (note_.empty() ? "" : "  " + note_) << "\x1b[K"
                << (final_line ? "\n" : "") << std::flush;
      return;
    }
  } else {
    std::snprintf(counts, sizeof counts, "%llu %s, %.1f %s/s, %s %s", (unsigned long long)done, unit_.c_str(),
                  rate, unit_.empty() ? "it" : unit_.c_str(), final_line ? "took" : "elapsed",
                  format_duration(elapsed).c_str());
    if (tty_) {
      std::cerr << '\r' << label_ << ' ' << counts << (note_.empty() ? "" : "  " + note_) << "\x1b[K"
                << (final_line ? "\n" : "") << std::flush;
      return;
    }
  }
  std::cerr << label_ << ": " << counts << (note_.empty() ? "" : "  " + note_) << '\n';
}

}  // namespace flexnas
