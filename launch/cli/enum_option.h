#pragma once
// A command-line flag whose value is one of an enum's spellings (design_space/enum_names.h): the
// flag accepts exactly the spellings a campaign file accepts, rejects anything else with the same
// "unknown value 'x'; allowed: a, b" text, and --help shows the choices and the default
// ("--targets rank|minmax=rank"). CLI11's CheckedTransformer would also accept the enum's integer
// values and print them in --help, hence this transformer.
#include <CLI/CLI.hpp>

#include <string>

#include "design_space/config_node.h"
#include "design_space/enum_names.h"

namespace flexnas::launch {

template <typename E>
CLI::Option* add_enum_option(CLI::App* app, const std::string& flag, E& value, const EnumNames<E>& names,
                             const std::string& description) {
  const std::vector<std::string> spellings = enum_spellings(names);
  CLI::Validator to_value(
      [names, spellings](std::string& text) -> std::string {
        for (const auto& entry : names)
          if (entry.first == text) {
            text = std::to_string(static_cast<long long>(entry.second));  // CLI11 then reads the integer
            return "";
          }
        return "unknown value '" + text + "'; allowed: " + join(spellings);
      },
      "", "");
  return app->add_option(flag, value, description)
      ->transform(to_value)
      ->type_name(join(spellings, "|"))
      ->default_str(enum_name(names, value));
}

/// The same for a value a library keeps as text (SentencePiece's model type): exactly one of
/// `choices`, with the same message and --help.
inline CLI::Option* add_choice_option(CLI::App* app, const std::string& flag, std::string& value,
                                      const std::vector<std::string>& choices, const std::string& description) {
  CLI::Validator check(
      [choices](std::string& text) -> std::string {
        for (const auto& choice : choices)
          if (choice == text) return "";
        return "unknown value '" + text + "'; allowed: " + join(choices);
      },
      "", "");
  return app->add_option(flag, value, description)->check(check)->type_name(join(choices, "|"))->default_str(value);
}

}  // namespace flexnas::launch
