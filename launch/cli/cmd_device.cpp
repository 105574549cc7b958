// flexnas device: what a model would run on here — the CPU's vector units, OpenBLAS's kernel and
// how it was chosen, LibTorch's CUDA, the device and precision `auto` resolves to, and (with
// --peak) the measured matrix-multiply rate in fp32 and in the lower precision.
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/Context.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "launch/cli/command.h"
#include "launch/evaluators/task_checkpoint.h"
#include "models/cpu_kernels.h"
#include "models/precision.h"

namespace flexnas::launch {
namespace {

struct DeviceCliOptions {
  ComputeFlags compute;  // what to resolve
  int64_t threads = 0;   // torch threads for --peak (0 = every core)
  bool peak = false;     // measure the matrix-multiply rate
  bool json = false;     // JSON instead of text
};

void run_device(const DeviceCliOptions& o) {
  set_torch_threads(o.threads);
  const models::CpuFeatures cpu = models::cpu_features();
  nlohmann::ordered_json j;
  j["cpu_features"] = cpu.summary();
  j["blas_kernel"] = models::current_blas_kernel();
  j["blas_kernel_best"] = models::best_blas_kernel(cpu);
  j["blas_kernel_note"] = models::blas_kernel_note();
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  j["openblas_coretype"] = env ? env : "";
  j["libtorch"] = TORCH_VERSION;
  j["libtorch_cuda"] = at::hasCUDA();
  j["cuda_devices"] = at::hasCUDA() ? int64_t(torch::cuda::device_count()) : 0;
  j["threads"] = torch::get_num_threads();
  std::streambuf* saved = nullptr;
  if (o.json) saved = std::cout.rdbuf(nullptr);  // resolve_compute's line is for people
  const Compute compute = resolve_compute(o.compute);
  if (o.json) std::cout.rdbuf(saved);
  j["device"] = compute.device.str();
  j["precision"] = models::precision_name(compute.precision);
  if (o.peak) {
    j["peak_gflops_fp32"] = models::matmul_peak_gflops(compute.device, models::Precision::kFp32);
    if (compute.precision != models::Precision::kFp32)
      j[std::string("peak_gflops_") + models::precision_name(compute.precision)] =
          models::matmul_peak_gflops(compute.device, compute.precision);
  }
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (const auto& [k, v] : j.items()) std::cout << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
}

void add_device_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("device", "the CPU/GPU, BLAS kernel and precision models run with here");
  auto o = std::make_shared<DeviceCliOptions>();
  add_compute_flags(*cmd, o->compute);
  cmd->add_option("--threads", o->threads, "torch threads for --peak; 0 = every core");
  cmd->add_flag("--peak", o->peak, "measure the matrix-multiply rate (1024 x 1024, fp32 and the chosen precision)");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->callback([o] { run_device(*o); });
}

FLEXNAS_REGISTER_COMMAND("device", add_device_command);

}  // namespace
}  // namespace flexnas::launch
