#pragma once
// Errors. Two kinds, both exceptions (STYLE.md B4):
//  - ConfigError: the user's input (a file, a flag) is wrong. The message is complete and
//    compiler-style: "file:line:col: error: key.path: what was found; what is allowed".
//    launch/cli/main.cpp prints it and exits with code 2.
//  - everything else (I/O, internal invariants via FLEXNAS_CHECK) exits with code 1.
#include <sstream>
#include <stdexcept>
#include <string>

namespace flexnas {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A mistake in user input. `what()` is the full located message.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Where a value came from: file, 1-based line and column (0 = unknown), dotted key path.
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // e.g. "architecture.hidden_size[1]"
};

/// "file:line:col: error: key: message" (parts that are unknown are left out).
std::string format_error(const Location& where, const std::string& message);

/// Throws ConfigError located at `where`.
[[noreturn]] void throw_config_error(const Location& where, const std::string& message);

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
[[noreturn]] void throw_internal(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

}  // namespace flexnas

/// Internal invariant (a bug if it fails, never a user mistake), in the style of TORCH_CHECK.
#define FLEXNAS_CHECK(cond, ...)                                                      \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      ::flexnas::detail::throw_internal(__FILE__, __LINE__, #cond,                    \
                                        ::flexnas::detail::concat("", ##__VA_ARGS__)); \
    }                                                                                 \
  } while (0)
