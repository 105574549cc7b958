#pragma once
// Subcommand registry. Each launch/cmd_<verb>.cpp defines `add_<verb>_command(CLI::App&)` and
// registers it with FLEXNAS_REGISTER_COMMAND; main.cpp adds every registered command. The
// cmd_*.cpp files are compiled into the executable itself, so their registrars always run.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace flexnas::launch {

struct CommandEntry {
  std::string name;
  std::function<void(CLI::App&)> add;
};

std::vector<CommandEntry>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, std::function<void(CLI::App&)> add);
};

/// Exit code of the command that ran (set by the command's callback; 0 by default).
int& command_exit_code();

}  // namespace flexnas::launch

#define FLEXNAS_REGISTER_COMMAND(name, add_fn) \
  static ::flexnas::launch::CommandRegistrar flexnas_command_registrar_##add_fn(name, add_fn)
