// flexnas: one executable, CLI11 subcommands (one launch/cmd_<verb>.cpp each).
// Exit codes: 0 success; 1 internal or I/O error; 2 bad input (file, flag); 128+signal after a
// graceful stop (set by the command).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "design_space/error.h"
#include "launch/command.h"

namespace {

// libgomp reads OMP_WAIT_POLICY once, when it is loaded (before main). Its default keeps idle OpenMP
// workers spinning after every parallel region, which on 2 cores takes the CPU from OpenBLAS's own
// worker: FlexiBERT-Mini trained at 2,437 tokens/s on 2 threads against 4,938 with the passive
// policy (bench/RESULTS-training.md). The training commands therefore re-execute themselves once
// with the passive policy, unless the user chose one (~0.4 s more start-up, once).
void prefer_passive_openmp(char** argv) {
  if (!argv[1] || std::getenv("OMP_WAIT_POLICY")) return;
  const char* verb = argv[1];
  if (std::strcmp(verb, "pretrain") != 0 && std::strcmp(verb, "finetune") != 0 && std::strcmp(verb, "evaluate") != 0)
    return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with libgomp's default
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
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
