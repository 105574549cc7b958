// flexnas: one executable, CLI11 subcommands (one launch/cmd_<verb>.cpp each).
// Exit codes: 0 success; 1 internal or I/O error; 2 bad input (file, flag); 128+signal after a
// graceful stop (set by the command).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "design_space/error.h"
#include "launch/command.h"

int main(int argc, char** argv) {
  CLI::App app{"flexnas: neural architecture search over heterogeneous transformer encoders"};
  app.set_version_flag("--version", "flexnas 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);
  auto& registry = flexnas::launch::command_registry();
  std::sort(registry.begin(), registry.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& entry : registry) entry.add(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // a wrong flag is bad input
  } catch (const flexnas::ConfigError& e) {
    std::cerr << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "flexnas: " << e.what() << std::endl;
    return 1;
  }
  return flexnas::launch::command_exit_code();
}
