#pragma once
// One tiny logging header for every layer. Messages go to stderr as "[flexnas] ..." or, under MPI,
// "[rank r/n] ...". Level from FLEXNAS_LOG (error|warn|info|debug; default info).
#include <sstream>
#include <string>

namespace flexnas {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel log_level();
/// Sets the prefix used by every later message (e.g. "[rank 1/3]").
void set_log_prefix(const std::string& prefix);
void log_message(LogLevel level, const std::string& text);

namespace detail {
template <typename... Parts>
std::string log_concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace flexnas

#define FLEXNAS_LOG(level, ...)                                                             \
  do {                                                                                      \
    if (::flexnas::log_level() >= ::flexnas::LogLevel::level)                               \
      ::flexnas::log_message(::flexnas::LogLevel::level, ::flexnas::detail::log_concat(__VA_ARGS__)); \
  } while (0)
#define LOG_INFO(...) FLEXNAS_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) FLEXNAS_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) FLEXNAS_LOG(kError, __VA_ARGS__)
#define LOG_DEBUG(...) FLEXNAS_LOG(kDebug, __VA_ARGS__)
