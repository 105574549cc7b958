#include "launch/cli/command.h"

#include <algorithm>

#include "launch/cli/enum_option.h"
#include "launch/evaluators/task_checkpoint.h"

namespace flexnas::launch {

std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}

CommandRegistrar::CommandRegistrar(const std::string& name, std::function<void(CLI::App&)> add) {
  command_registry().push_back({name, [name, add = std::move(add)](CLI::App& app) {
                                  add(app);
                                  show_defaults(*app.get_subcommand(name));
                                }});
}

int& command_exit_code() {
  static int code = 0;
  return code;
}

void show_defaults(CLI::App& cmd) {
  for (CLI::Option* opt : cmd.get_options()) {
    if (opt->get_type_size() == 0 || opt->get_required() || !opt->get_default_str().empty()) continue;
    opt->capture_default_str();  // nothing for an option without a variable (add_option_function)
    std::string text = opt->get_default_str();
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (opt->get_expected_max() > 1 && opt->get_delimiter() != '\0')  // a list, as it is typed: 64,128
      std::replace(text.begin(), text.end(), ' ', opt->get_delimiter());
    opt->default_str(text);
  }
  for (CLI::App* sub : cmd.get_subcommands([](CLI::App*) { return true; })) show_defaults(*sub);
}

void add_compute_flags(CLI::App& cmd, ComputeFlags& flags) {
  cmd.add_option("--device", flags.device, "auto (first visible GPU, else CPU) | cpu | cuda | cuda:N");
  add_enum_option(&cmd, "--precision", flags.precision, models::precision_enum_names(),
                  "auto: bf16 on CUDA and on CPUs with AMX/AVX512-BF16, else fp32; fp16 needs CUDA");
}

}  // namespace flexnas::launch
