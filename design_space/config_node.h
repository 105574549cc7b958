#pragma once
// A located view of a YAML (or JSON: yaml-cpp parses both) document. Every accessor that can
// fail throws ConfigError naming file:line:col, the dotted key path, what was found and what is
// allowed. Never use nlohmann's convenience macros for user input (STYLE.md B3): they accept
// misspelt keys silently.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "design_space/enum_names.h"
#include "design_space/error.h"

namespace flexnas {

/// Joins values for "allowed: a, b, c" messages.
std::string join(const std::vector<std::string>& values, const std::string& separator = ", ");

class ConfigNode {
 public:
  /// Parses a file; a missing file or a syntax error is a located ConfigError.
  static ConfigNode load_file(const std::string& path);
  /// Parses text; `name` stands for the file name in messages (e.g. "--arch" or "<string>").
  static ConfigNode load_string(const std::string& text, const std::string& name);

  ConfigNode(YAML::Node node, std::shared_ptr<const std::string> file, std::string key_path);

  bool is_map() const { return node_.IsMap(); }
  bool is_sequence() const { return node_.IsSequence(); }
  bool is_scalar() const { return node_.IsScalar(); }
  bool is_null() const { return !node_.IsDefined() || node_.IsNull(); }
  /// "a map", "a list", "a scalar 'x'", "nothing".
  std::string describe() const;

  /// Map lookups. `operator[]` requires the key; `find` returns nullopt when absent.
  bool has(const std::string& key) const;
  ConfigNode operator[](const std::string& key) const;
  std::optional<ConfigNode> find(const std::string& key) const;
  /// Map entries in file order (keys must be scalars).
  std::vector<std::pair<std::string, ConfigNode>> entries() const;
  /// Fails on the first key not in `allowed`, listing the allowed ones.
  void check_keys(const std::vector<std::string>& allowed) const;

  /// Sequence access.
  size_t size() const;
  ConfigNode at(size_t i) const;
  std::vector<ConfigNode> items() const;

  /// Scalars. Integers are strict decimal ("12", "-3"); booleans true/false/yes/no.
  int64_t as_int() const;
  double as_double() const;
  bool as_bool() const;
  std::string as_string() const;
  bool is_int() const;  // a scalar that parses as a strict decimal integer

  /// Lists of scalars; `non_empty` and `unique` are checked with located messages.
  std::vector<int64_t> as_int_list(bool non_empty = true, bool unique = true) const;
  std::vector<std::string> as_string_list(bool non_empty = true, bool unique = true) const;

  /// Optional keys: leave `out` (the default) untouched when the key is absent.
  void get(const std::string& key, int64_t& out) const;
  void get(const std::string& key, int& out) const;
  void get(const std::string& key, double& out) const;
  void get(const std::string& key, bool& out) const;
  void get(const std::string& key, std::string& out) const;
  /// A scalar that must be one of `names`: "unknown value 'x'; allowed: a, b" otherwise.
  template <typename E>
  E as_enum(const EnumNames<E>& names) const {
    const std::string value = as_string();
    for (const auto& entry : names)
      if (entry.first == value) return entry.second;
    fail("unknown value '" + value + "'; allowed: " + join(enum_spellings(names)));
  }
  template <typename E>
  void get_enum(const std::string& key, E& out, const EnumNames<E>& names) const {
    if (auto v = find(key)) out = v->as_enum(names);
  }

  /// Throws a ConfigError located at this node.
  [[noreturn]] void fail(const std::string& message) const;
  /// Fails with `message` unless `ok`.
  void check(bool ok, const std::string& message) const {
    if (!ok) fail(message);
  }

  Location location() const;
  const std::string& key_path() const { return key_; }
  const std::string& file() const { return *file_; }
  const YAML::Node& yaml() const { return node_; }

 private:
  std::string child_path(const std::string& key) const;
  std::string child_path(size_t index) const;
  void require_map() const;
  void require_sequence() const;
  void require_scalar(const char* what) const;

  YAML::Node node_;
  std::shared_ptr<const std::string> file_;
  std::string key_;
  // Where the parent saw this node (for absent keys, which have no mark of their own).
  int fallback_line_ = 0;
  int fallback_column_ = 0;
};

}  // namespace flexnas
