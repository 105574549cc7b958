#pragma once
// Flag parsing shared by the bench programs: CLI11, with the exit codes of the flexnas CLI
// (launch's main): --help prints the flags with their defaults and exits 0; a wrong flag or value
// prints CLI11's message and exits 2 (bad input).
#include <CLI/CLI.hpp>

namespace flexnas::bench {

/// An App whose options show their default values in --help (every option captures it).
inline void show_defaults(CLI::App& app) { app.option_defaults()->always_capture_default(); }

/// Parses argv into `app`. Returns -1 to go on, or the exit code to return from main: 0 after
/// --help, 2 after a parse error (CLI11's own codes are 105-109).
inline int parse_flags(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help or the error
    return code == 0 ? 0 : 2;
  }
  return -1;
}

}  // namespace flexnas::bench
