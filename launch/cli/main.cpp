// flexnas: one executable, CLI11 subcommands (one launch/cli/cmd_<verb>.cpp each).
// Exit codes: 0 success; 1 internal or I/O error; 2 bad input (file, flag); 128+signal after a
// graceful stop (set by the command).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "design_space/error.h"
#include "launch/cli/command.h"
#include "models/cpu_kernels.h"

namespace {

// Commands that train or run models; only they pay for a re-execution (~0.4 s, once).
bool is_compute_command(char** argv) {
  for (const char* v : {"pretrain", "finetune", "evaluate", "probe", "device"})
    if (std::strcmp(argv[1], v) == 0) return true;
  return std::strcmp(argv[1], "model") == 0 && argv[2] && std::strcmp(argv[2], "profile") == 0;
}

// Two settings are read once, when their libraries load (before main), so a compute command sets
// them and re-executes itself once:
// - libgomp's OMP_WAIT_POLICY. Its default keeps idle OpenMP workers spinning after every parallel
//   region, which on 2 cores takes the CPU from OpenBLAS's own worker: FlexiBERT-Mini trained at
//   2,437 tokens/s on 2 threads against 4,938 with the passive policy (bench/RESULTS-training.md).
//   Unless the user chose a policy, passive.
// - OpenBLAS's kernel (models/cpu_kernels.h): OPENBLAS_CORETYPE when OpenBLAS fell back to a
//   generic kernel on a CPU with AVX2 or AVX-512; never when the user or the machine set it.
void prepare_compute_process(char** argv) {
  if (!argv[1] || !is_compute_command(argv)) return;
  bool again = false;
  if (!std::getenv("OMP_WAIT_POLICY") && ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0) again = true;
  if (flexnas::models::prepare_blas_kernel()) again = true;
  if (again) ::execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  prepare_compute_process(argv);
  CLI::App app{"flexnas: neural architecture search over heterogeneous transformer encoders"};
  app.set_version_flag("--version", "flexnas 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);
  // CLI11's own errors (unknown flag, bad number, a value not among a flag's choices) start like
  // flexnas's: "error: --lr: ...".
  app.failure_message(
      [](const CLI::App* a, const CLI::Error& e) { return "error: " + CLI::FailureMessage::simple(a, e); });
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
