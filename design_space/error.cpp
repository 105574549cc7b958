#include "design_space/error.h"

namespace flexnas {

std::string format_error(const Location& where, const std::string& message) {
  std::string out;
  if (!where.file.empty()) {
    out += where.file;
    if (where.line > 0) {
      out += ":" + std::to_string(where.line);
      if (where.column > 0) out += ":" + std::to_string(where.column);
    }
    out += ": ";
  }
  out += "error: ";
  if (!where.key.empty()) out += where.key + ": ";
  out += message;
  return out;
}

void throw_config_error(const Location& where, const std::string& message) {
  throw ConfigError(format_error(where, message));
}

namespace detail {
void throw_internal(const char* file, int line, const char* cond, const std::string& msg) {
  std::string text = std::string("internal error: ") + file + ":" + std::to_string(line) +
                     ": check '" + cond + "' failed";
  if (!msg.empty()) text += ": " + msg;
  throw Error(text);
}
}  // namespace detail

}  // namespace flexnas
