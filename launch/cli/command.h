#pragma once
// Subcommand registry and what every subcommand shares. Each launch/cli/cmd_<verb>.cpp defines
// `add_<verb>_command(CLI::App&)` and registers it with FLEXNAS_REGISTER_COMMAND; main.cpp adds
// every registered command. The cmd_*.cpp files are compiled into the executable itself, so their
// registrars always run.
//
// Defaults live in the options structs the flags write to, nowhere else: after a command's flags
// are added, the registry captures each option's value as its --help default ("--lr FLOAT=0.0001";
// see show_defaults). A description says what a sentinel value means ("0 = every core"), not the
// default itself; a default only known at run time is a default_str ("<data-dir>/cache").
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "design_space/error.h"

namespace flexnas::launch {

struct CommandEntry {
  std::string name;
  std::function<void(CLI::App&)> add;
};

std::vector<CommandEntry>& command_registry();

/// Registers `add`, which adds the subcommand `name` to the app; show_defaults runs on it after.
struct CommandRegistrar {
  CommandRegistrar(const std::string& name, std::function<void(CLI::App&)> add);
};

/// Exit code of the command that ran (set by the command's callback; 0 by default).
int& command_exit_code();

/// A bad flag value: throws ConfigError "error: <flag>: <message>" (exit code 2). Every command
/// and `flexnas slurm submit` (launch/slurm/job_script.cpp) report bad flags through it.
[[noreturn]] inline void flag_error(const std::string& flag, const std::string& message) {
  throw ConfigError("error: " + flag + ": " + message);
}

/// --help shows the defaults the code holds: every option of `cmd` and of its subcommands that
/// takes a value, is not required and has no default text yet gets its variable's current value
/// as its default ("--seed UINT=42"); a list shows as it is typed ("64,128,256"), an empty text or
/// list shows nothing. Run by the registry after each command is added.
void show_defaults(CLI::App& cmd);

struct ComputeFlags;  // launch/evaluators/task_checkpoint.h
/// Adds --device and --precision (choices and defaults from ComputeFlags) to `cmd`.
void add_compute_flags(CLI::App& cmd, ComputeFlags& flags);

}  // namespace flexnas::launch

#define FLEXNAS_REGISTER_COMMAND(name, add_fn) \
  static ::flexnas::launch::CommandRegistrar flexnas_command_registrar_##add_fn(name, add_fn)
