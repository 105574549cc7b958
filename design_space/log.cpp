#include "design_space/log.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

namespace flexnas {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("FLEXNAS_LOG");
  if (!env) return LogLevel::kInfo;
  if (!std::strcmp(env, "error")) return LogLevel::kError;
  if (!std::strcmp(env, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
  return LogLevel::kInfo;
}

std::string& prefix_ref() {
  static std::string prefix = "[flexnas]";
  return prefix;
}
std::mutex& log_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

LogLevel log_level() {
  static const LogLevel level = initial_level();  // FLEXNAS_LOG, read once
  return level;
}
void set_log_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(log_mutex());
  prefix_ref() = prefix;
}

void log_message(LogLevel level, const std::string& text) {
  static const char* kNames[] = {"error: ", "warning: ", "", "debug: "};
  std::lock_guard<std::mutex> lock(log_mutex());
  std::cerr << prefix_ref() << ' ' << kNames[static_cast<int>(level)] << text << '\n';
}

}  // namespace flexnas
