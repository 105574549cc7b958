#pragma once
// The spelling of an option's values, defined once next to its enum and used by every reader: the
// YAML readers (ConfigNode::as_enum / get_enum, whose error lists the allowed names), the command
// line (cli_map feeds CLI11's CheckedTransformer, which lists them too) and the writers (enum_name,
// for frozen configurations and reports). A value has exactly one spelling.
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace flexnas {

/// {spelling, value} in the order messages list them.
template <typename E>
using EnumNames = std::vector<std::pair<std::string, E>>;

/// The spellings, in order ("allowed: a, b, c").
template <typename E>
std::vector<std::string> enum_spellings(const EnumNames<E>& names) {
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const auto& entry : names) out.push_back(entry.first);
  return out;
}

/// The spelling of `value`; a value without one is a programming error.
template <typename E>
const std::string& enum_name(const EnumNames<E>& names, E value) {
  for (const auto& entry : names)
    if (entry.second == value) return entry.first;
  throw std::logic_error("enum value without a spelling");
}

/// Spelling -> value, for CLI::CheckedTransformer (which then accepts only these and lists them).
template <typename E>
std::map<std::string, E> cli_map(const EnumNames<E>& names) {
  return std::map<std::string, E>(names.begin(), names.end());
}

}  // namespace flexnas
