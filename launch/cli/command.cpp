#include "launch/cli/command.h"

namespace flexnas::launch {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}

CommandRegistrar::CommandRegistrar(const std::string& name, std::function<void(CLI::App&)> add) {
  command_registry().push_back({name, std::move(add)});
}

int& command_exit_code() {
  static int code = 0;
  return code;
}

}  // namespace flexnas::launch
