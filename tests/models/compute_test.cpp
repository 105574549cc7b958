// Compute choices: the OpenBLAS kernel decision (unset -> chosen, set -> untouched, refused ->
// never again) and its numeric check, devices and precisions (the no-CUDA error), the fp32
// islands of every op type under bf16 autocast, and fp16 loss scaling.
#include <gtest/gtest.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "design_space/error.h"
#include "models/cpu_kernels.h"
#include "models/precision.h"
#include "models/profile.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {

using testing::hetero_arch;
using testing::standard_arch;
using testing::tiny_batch;
using testing::tiny_options;

CpuFeatures avx512_cpu() {
  CpuFeatures f;
  f.avx = f.avx2 = f.fma = f.avx512 = true;
  return f;
}

TEST(BlasKernel, GenericPickOnAnAvx512CpuIsReplaced) {
  const BlasKernelDecision d = decide_blas_kernel(avx512_cpu(), "Prescott", nullptr, nullptr);
  EXPECT_EQ(d.kernel, "SkylakeX");
  EXPECT_NE(d.reason.find("generic Prescott"), std::string::npos) << d.reason;
  CpuFeatures bf16 = avx512_cpu();
  bf16.avx512_bf16 = true;
  EXPECT_EQ(decide_blas_kernel(bf16, "Nehalem", nullptr, nullptr).kernel, "Cooperlake");
  CpuFeatures avx2;
  avx2.avx = avx2.avx2 = avx2.fma = true;
  EXPECT_EQ(decide_blas_kernel(avx2, "Prescott", nullptr, nullptr).kernel, "Haswell");
}

TEST(BlasKernel, ValuesSetOutsideFlexnasAndRightPicksAreLeftAlone) {
  // The user (or the machine) set OPENBLAS_CORETYPE: never changed, whatever it is.
  const BlasKernelDecision set = decide_blas_kernel(avx512_cpu(), "Prescott", "Prescott", nullptr);
  EXPECT_EQ(set.kernel, "");
  EXPECT_NE(set.reason.find("set outside flexnas"), std::string::npos) << set.reason;
  // OpenBLAS already runs a kernel as strong as the CPU allows.
  EXPECT_EQ(decide_blas_kernel(avx512_cpu(), "Cooperlake", nullptr, nullptr).kernel, "");
  EXPECT_EQ(decide_blas_kernel(avx512_cpu(), "SkylakeX", nullptr, nullptr).kernel, "");
  // A CPU without AVX has nothing better; a BLAS that is not OpenBLAS has no kernel to choose.
  EXPECT_EQ(decide_blas_kernel(CpuFeatures{}, "Prescott", nullptr, nullptr).kernel, "");
  EXPECT_EQ(decide_blas_kernel(avx512_cpu(), "", nullptr, nullptr).kernel, "");
  // A kernel that failed the numeric check is not chosen again.
  EXPECT_EQ(decide_blas_kernel(avx512_cpu(), "Prescott", nullptr, "SkylakeX").kernel, "");
}

TEST(BlasKernel, RanksFollowTheVectorUnits) {
  EXPECT_LT(blas_kernel_rank("Prescott"), blas_kernel_rank("Sandybridge"));
  EXPECT_LT(blas_kernel_rank("Sandybridge"), blas_kernel_rank("Haswell"));
  EXPECT_LT(blas_kernel_rank("Haswell"), blas_kernel_rank("SkylakeX"));
  EXPECT_EQ(blas_kernel_rank("SkylakeX"), blas_kernel_rank("Cooperlake"));
  EXPECT_EQ(blas_kernel_rank("SomethingNew"), 0);
}

// A kernel that is right except for one element of the large case.
void wrong_sgemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                 const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                 const int* ldc) {
  process_sgemm()(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (*m == 192) c[5 * *ldc + 7] += 0.05f;  // about 1e-3 of the element's sum|x*y|
}

TEST(BlasKernel, NumericCheckPassesTheProcessKernelAndRefusesAWrongOne) {
  ASSERT_NE(process_sgemm(), nullptr) << "LibTorch links a BLAS with sgemm_";
  EXPECT_EQ(check_sgemm(process_sgemm()), "");
  const std::string problem = check_sgemm(&wrong_sgemm);
  EXPECT_NE(problem.find("sgemm 192x192x192 NN: element (7,5)"), std::string::npos) << problem;
  EXPECT_NE(check_sgemm(nullptr), "");
}

TEST(Compute, DevicesAndPrecisionsParseAndCudaWithoutCudaIsAClearError) {
  EXPECT_EQ(resolve_device("cpu", "--device"), torch::Device(torch::kCPU));
  if (!torch::cuda::is_available()) EXPECT_EQ(resolve_device("auto", "--device"), torch::Device(torch::kCPU));
  if (!at::hasCUDA()) {
    try {
      resolve_device("cuda:0", "--device");
      ADD_FAILURE() << "cuda accepted by a LibTorch without CUDA";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("error: --device: 'cuda:0': this LibTorch was built without CUDA"),
                std::string::npos)
          << e.what();
    }
  }
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", ""})
    EXPECT_THROW(resolve_device(bad, "--device"), ConfigError) << bad;
  EXPECT_EQ(parse_precision("bf16", "--precision"), Precision::kBf16);
  try {
    parse_precision("half", "--precision");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "error: --precision: unknown precision 'half' (allowed: auto, fp32, bf16, fp16)");
  }
  EXPECT_THROW(resolve_precision(Precision::kFp16, torch::kCPU, "--precision"), ConfigError);
  EXPECT_EQ(resolve_precision(Precision::kFp32, torch::kCPU, "--precision"), Precision::kFp32);
  const CpuFeatures cpu = cpu_features();
  EXPECT_EQ(resolve_precision(Precision::kAuto, torch::kCPU, "--precision"),
            cpu.amx_bf16 || cpu.avx512_bf16 ? Precision::kBf16 : Precision::kFp32);
}

// Every op type, both formats: under bf16 autocast the forward runs (LayerNorm would reject a bf16
// input: it only runs because its inputs are fp32), hidden states and logits are fp32, close to the
// fp32 forward, and the loss is fp32.
TEST(Compute, Fp32IslandsHoldForEveryOpUnderBf16) {
  const std::vector<std::pair<std::string, Architecture>> archs = {
      {"sa sdp", standard_arch("sa", "sdp")}, {"sa wma", standard_arch("sa", "wma")},
      {"c 5", standard_arch("c", "5")},       {"l dct", standard_arch("l", "dct")},
      {"l dft", standard_arch("l", "dft")},   {"hetero c", hetero_arch("c", "3")},
      {"hetero l", hetero_arch("l", "dft")}};
  const auto [ids, mask] = tiny_batch();
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence, HeadType::kToken})
    for (const auto& [name, arch] : archs) {
      torch::manual_seed(3);
      FlexModel model(arch, tiny_options(head));
      model->eval();
      torch::NoGradGuard no_grad;
      const ModelOutput ref = model->forward(ids, mask);
      ModelOutput low;
      torch::Tensor loss;
      {
        AutocastScope autocast(Precision::kBf16, torch::kCPU);
        low = model->forward(ids, mask);
        const torch::Tensor labels = head == HeadType::kSequence ? torch::tensor({1, 2}) : ids.remainder(2);
        loss = model->loss(ids, mask, labels);
      }
      EXPECT_EQ(low.hidden.scalar_type(), torch::kFloat) << name;
      EXPECT_EQ(low.logits.scalar_type(), torch::kFloat) << name;
      EXPECT_EQ(loss.scalar_type(), torch::kFloat) << name;
      EXPECT_TRUE(std::isfinite(loss.item<double>())) << name;
      // bf16 keeps 8 bits of mantissa: the hidden states (LayerNorm outputs, ~unit scale) agree to
      // a few hundredths.
      const double diff = (low.hidden - ref.hidden).abs().max().item<double>();
      EXPECT_LT(diff, 0.1) << name << " head " << head_type_name(head);
    }
  // Outside the scope autocast is off again.
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

TEST(Profile, PeakTensorBytesSeesAllocationsInsideOnly) {
  const auto outside = torch::ones({1 << 18});  // 1 MiB, before: not counted
  const int64_t peak = peak_tensor_bytes([] {
    auto a = torch::zeros({1 << 18});  // 1 MiB
    auto b = torch::zeros({1 << 19});  // 2 MiB, both alive: 3 MiB
  });
  EXPECT_GE(peak, 3 << 20);
  EXPECT_LT(peak, (3 << 20) + (64 << 10));
  EXPECT_EQ(peak_tensor_bytes([] {}), 0);
  EXPECT_EQ(outside.numel(), 1 << 18);
}

// The profile's schema and its internal consistency on a tiny model: one row per length within
// max_positions, positive times, memory growing with the length, the largest batch shrinking as
// the budget shrinks, 0 when not even one example fits.
TEST(Profile, RowsSchemaAndMemoryBudget) {
  ModelOptions mo = tiny_options();
  mo.max_positions = 32;
  ProfileOptions o;
  o.seq_lens = {8, 32, 64};  // 64 > max_positions: skipped
  o.batch_size = 4;
  o.repeats = 1;
  o.memory_budget_mb = 64;
  const ModelProfile p = profile_model(standard_arch("sa", "sdp"), mo, o);
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_GT(p.parameters, 0);
  for (const auto& r : p.rows) {
    EXPECT_GT(r.forward_ms, 0);
    EXPECT_GT(r.train_step_ms, 0);
    EXPECT_GT(r.train_tokens_per_second, 0);
    EXPECT_GT(r.peak_train_mb, 0);
    EXPECT_GE(r.max_train_batch, o.batch_size);  // a tiny model: 4 examples fit 64 MiB easily
  }
  EXPECT_GT(p.rows[1].peak_train_mb, p.rows[0].peak_train_mb);
  EXPECT_LE(p.rows[1].max_train_batch, p.rows[0].max_train_batch);
  const auto j = p.to_json(o);
  for (const char* key : {"parameters", "device", "precision", "threads", "memory_budget_mb", "rows"})
    EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"seq_len", "batch_size", "forward_ms", "train_step_ms", "train_tokens_per_second",
                          "peak_train_mb", "max_train_batch"})
    EXPECT_TRUE(j["rows"][0].contains(key)) << key;
  ProfileOptions tight = o;
  tight.seq_lens = {32};
  tight.memory_budget_mb = 0;  // less than the weights and moments
  EXPECT_EQ(profile_model(standard_arch("sa", "sdp"), mo, tight).rows.at(0).max_train_batch, 0);
}

TEST(Compute, LossScalerSkipsOverflowingStepsAndUnscalesTheRest) {
  auto p = torch::ones({3}, torch::requires_grad());
  p.mutable_grad() = torch::full({3}, 8.0);
  LossScaler scaler(true, 4.0, /*growth_interval=*/2);
  EXPECT_DOUBLE_EQ(scaler.scale(), 4.0);
  EXPECT_TRUE(scaler.unscale_and_check({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({3}, 2.0)));
  p.mutable_grad() = torch::tensor({1.0f, std::numeric_limits<float>::infinity(), 0.0f});
  EXPECT_FALSE(scaler.unscale_and_check({p}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 2.0);
  p.mutable_grad() = torch::ones({3});
  EXPECT_TRUE(scaler.unscale_and_check({p}));
  EXPECT_TRUE(scaler.unscale_and_check({p}));
  EXPECT_DOUBLE_EQ(scaler.scale(), 4.0);  // two good steps: grown back
  LossScaler off(false);
  EXPECT_DOUBLE_EQ(off.scale(), 1.0);
  p.mutable_grad() = torch::full({3}, std::nan(""));
  EXPECT_TRUE(off.unscale_and_check({p}));
}

}  // namespace
}  // namespace flexnas::models
