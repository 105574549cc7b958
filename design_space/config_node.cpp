#include "design_space/config_node.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace flexnas {

std::string join(const std::vector<std::string>& values, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += separator;
    out += values[i];
  }
  return out;
}

namespace {

std::string shorten(const std::string& text) {
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

bool parse_strict_int(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (*begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

ConfigNode::ConfigNode(YAML::Node node, std::shared_ptr<const std::string> file, std::string key_path)
    : node_(std::move(node)), file_(std::move(file)), key_(std::move(key_path)) {}

ConfigNode ConfigNode::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_config_error(Location{path, 0, 0, ""}, "cannot open file: " + std::string(std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return load_string(buffer.str(), path);
}

ConfigNode ConfigNode::load_string(const std::string& text, const std::string& name) {
  auto file = std::make_shared<const std::string>(name);
  try {
    YAML::Node root = YAML::Load(text);
    return ConfigNode(root, file, "");
  } catch (const YAML::Exception& e) {
    throw_config_error(Location{name, e.mark.line + 1, e.mark.column + 1, ""}, "invalid YAML/JSON: " + e.msg);
  }
}

std::string ConfigNode::describe() const {
  if (!node_.IsDefined() || node_.IsNull()) return "nothing";
  if (node_.IsMap()) return "a map";
  if (node_.IsSequence()) return "a list";
  return "'" + shorten(node_.Scalar()) + "'";
}

Location ConfigNode::location() const {
  Location where{*file_, fallback_line_, fallback_column_, key_};
  if (node_.IsDefined() && !node_.Mark().is_null()) {
    where.line = node_.Mark().line + 1;
    where.column = node_.Mark().column + 1;
  }
  return where;
}

void ConfigNode::fail(const std::string& message) const { throw_config_error(location(), message); }

std::string ConfigNode::child_path(const std::string& key) const { return key_.empty() ? key : key_ + "." + key; }
std::string ConfigNode::child_path(size_t index) const { return key_ + "[" + std::to_string(index) + "]"; }

void ConfigNode::require_map() const {
  if (!node_.IsMap()) fail("expected a map, got " + describe());
}
void ConfigNode::require_sequence() const {
  if (!node_.IsSequence()) fail("expected a list, got " + describe());
}
void ConfigNode::require_scalar(const char* what) const {
  if (!node_.IsScalar()) fail(std::string("expected ") + what + ", got " + describe());
}

bool ConfigNode::has(const std::string& key) const { return node_.IsMap() && node_[key].IsDefined(); }

std::optional<ConfigNode> ConfigNode::find(const std::string& key) const {
  require_map();
  YAML::Node child = node_[key];
  if (!child.IsDefined()) return std::nullopt;
  return ConfigNode(child, file_, child_path(key));
}

ConfigNode ConfigNode::operator[](const std::string& key) const {
  auto child = find(key);
  if (!child) fail("missing required key '" + key + "'");
  return *child;
}

std::vector<std::pair<std::string, ConfigNode>> ConfigNode::entries() const {
  require_map();
  std::vector<std::pair<std::string, ConfigNode>> out;
  for (const auto& kv : node_) {
    ConfigNode key_node(kv.first, file_, key_);
    if (!kv.first.IsScalar()) key_node.fail("map keys must be scalars, got " + key_node.describe());
    std::string key = kv.first.Scalar();
    ConfigNode value(kv.second, file_, child_path(key));
    value.fallback_line_ = kv.first.Mark().line + 1;
    value.fallback_column_ = kv.first.Mark().column + 1;
    out.emplace_back(key, value);
  }
  return out;
}

void ConfigNode::check_keys(const std::vector<std::string>& allowed) const {
  require_map();
  for (const auto& kv : node_) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::vector<std::string> sorted = allowed;
      std::sort(sorted.begin(), sorted.end());
      ConfigNode where(kv.first, file_, child_path(key));
      where.fail("unknown key '" + key + "' (expected one of: " + join(sorted) + ")");
    }
  }
}

size_t ConfigNode::size() const {
  require_sequence();
  return node_.size();
}

ConfigNode ConfigNode::at(size_t i) const {
  require_sequence();
  if (i >= node_.size()) fail("index " + std::to_string(i) + " out of range (size " + std::to_string(node_.size()) + ")");
  return ConfigNode(node_[i], file_, child_path(i));
}

std::vector<ConfigNode> ConfigNode::items() const {
  require_sequence();
  std::vector<ConfigNode> out;
  out.reserve(node_.size());
  for (size_t i = 0; i < node_.size(); ++i) out.emplace_back(node_[i], file_, child_path(i));
  return out;
}

bool ConfigNode::is_int() const {
  int64_t value;
  return node_.IsScalar() && parse_strict_int(node_.Scalar(), value);
}

int64_t ConfigNode::as_int() const {
  require_scalar("an integer");
  int64_t value = 0;
  if (!parse_strict_int(node_.Scalar(), value)) fail("expected an integer, got '" + shorten(node_.Scalar()) + "'");
  return value;
}

double ConfigNode::as_double() const {
  require_scalar("a number");
  const std::string& text = node_.Scalar();
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    fail("expected a number, got '" + shorten(text) + "'");
  return value;
}

bool ConfigNode::as_bool() const {
  require_scalar("true or false");
  std::string text = node_.Scalar();
  std::transform(text.begin(), text.end(), text.begin(), ::tolower);
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  fail("expected true or false, got '" + shorten(node_.Scalar()) + "'");
}

std::string ConfigNode::as_string() const {
  require_scalar("a string");
  return node_.Scalar();
}

std::vector<int64_t> ConfigNode::as_int_list(bool non_empty, bool unique) const {
  require_sequence();
  if (non_empty && node_.size() == 0) fail("expected a non-empty list of integers, got an empty list");
  std::vector<int64_t> out;
  for (const ConfigNode& item : items()) {
    int64_t value = item.as_int();
    if (unique && std::find(out.begin(), out.end(), value) != out.end())
      item.fail("duplicate value " + std::to_string(value) + " (each value may appear once)");
    out.push_back(value);
  }
  return out;
}

std::vector<std::string> ConfigNode::as_string_list(bool non_empty, bool unique) const {
  require_sequence();
  if (non_empty && node_.size() == 0) fail("expected a non-empty list, got an empty list");
  std::vector<std::string> out;
  for (const ConfigNode& item : items()) {
    std::string value = item.as_string();
    if (unique && std::find(out.begin(), out.end(), value) != out.end())
      item.fail("duplicate value '" + value + "' (each value may appear once)");
    out.push_back(value);
  }
  return out;
}

void ConfigNode::get(const std::string& key, int64_t& out) const {
  if (auto child = find(key)) out = child->as_int();
}
void ConfigNode::get(const std::string& key, int& out) const {
  if (auto child = find(key)) {
    int64_t value = child->as_int();
    if (value < INT32_MIN || value > INT32_MAX) child->fail("value " + std::to_string(value) + " is out of range");
    out = static_cast<int>(value);
  }
}
void ConfigNode::get(const std::string& key, double& out) const {
  if (auto child = find(key)) out = child->as_double();
}
void ConfigNode::get(const std::string& key, bool& out) const {
  if (auto child = find(key)) out = child->as_bool();
}
void ConfigNode::get(const std::string& key, std::string& out) const {
  if (auto child = find(key)) out = child->as_string();
}

}  // namespace flexnas
