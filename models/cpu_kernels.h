#pragma once
// The CPU's matrix kernels: which OpenBLAS kernel ("core") a process should run, and the check that
// a chosen kernel computes right.
//
// Debian's OpenBLAS picks its kernel from the CPU model when it is loaded. On CPUs it does not know
// (virtual machines report a generic "Intel(R) Xeon(R) Processor") it falls back to `Prescott`, a
// kernel without AVX, and every fp32 matrix product in flexnas (and in PyTorch) runs at a third or
// less of the speed the CPU's AVX-512 or AVX2 units give (bench/RESULTS-training.md). OpenBLAS
// reads OPENBLAS_CORETYPE once, at load time, so the choice is made before it loads: flexnas's
// compute commands look at the kernel OpenBLAS picked, and when the CPU's features (cpuid, with the
// OS's consent through XGETBV) support a better one, set OPENBLAS_CORETYPE and re-execute themselves
// once (launch/cli/main.cpp). A value the user or the machine set is never changed. The re-executed
// process checks the kernel numerically (a few products against a double-precision reference) and
// refuses it when it computes wrong results.
//
// No LibTorch here: this runs before anything else in main().
#include <string>

namespace flexnas::models {

/// What cpuid says about the vector units (each already checked against the OS's saved state).
struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false;
  bool avx512 = false;       // F, CD, BW, DQ and VL together (OpenBLAS's SkylakeX kernels)
  bool avx512_bf16 = false;  // AVX512_BF16 (Cooper Lake and later)
  bool amx_bf16 = false;     // AMX tiles with bf16 (Sapphire Rapids and later; oneDNN uses them)
  std::string summary() const;  // "avx2 fma avx512 avx512_bf16 amx_bf16"
};
CpuFeatures cpu_features();

/// The strongest OpenBLAS 0.3.x kernel these features run ("Cooperlake", "SkylakeX", "Haswell",
/// "Sandybridge"), or "" when none beats OpenBLAS's generic ones.
std::string best_blas_kernel(const CpuFeatures& cpu);

/// Rank of an OpenBLAS core name by the vector units its sgemm uses: 0 unknown/generic (Prescott,
/// Core2, Nehalem, ...), 1 AVX (Sandybridge, Bulldozer...), 2 AVX2 (Haswell, Zen...), 3 AVX-512
/// (SkylakeX, Cooperlake, SapphireRapids).
int blas_kernel_rank(const std::string& core_name);

/// The kernel OpenBLAS runs in this process ("" when the BLAS is not OpenBLAS).
std::string current_blas_kernel();

/// What to do before OpenBLAS does real work. `env_coretype` is OPENBLAS_CORETYPE (nullptr: unset),
/// `refused` a kernel an earlier check refused (FLEXNAS_BLAS_REFUSED; never chosen again).
struct BlasKernelDecision {
  std::string kernel;  // the kernel to set in OPENBLAS_CORETYPE; "" = leave everything as it is
  std::string reason;  // one line for the user
};
BlasKernelDecision decide_blas_kernel(const CpuFeatures& cpu, const std::string& current, const char* env_coretype,
                                      const char* refused);

/// Fortran-ABI sgemm (column-major), as OpenBLAS exports it.
using SgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                         const float* beta, float* c, const int* ldc);
/// The process's sgemm_ (nullptr when no BLAS is loaded).
SgemmFn process_sgemm();
/// Multiplies a few seeded matrices (odd shapes, transposes, and one large enough for the blocked
/// kernels) with `sgemm` and compares every element against a double-precision product; "" when all
/// agree within fp32 rounding, else what differed.
std::string check_sgemm(SgemmFn sgemm);

/// Environment variables of the choice: set by the parent before re-executing.
inline constexpr const char* kBlasChosenEnv = "FLEXNAS_BLAS_CHOSEN";      // the kernel flexnas set
inline constexpr const char* kBlasDetectedEnv = "FLEXNAS_BLAS_DETECTED";  // what OpenBLAS had picked
inline constexpr const char* kBlasRefusedEnv = "FLEXNAS_BLAS_REFUSED";    // a kernel that failed the check

/// The whole start-up step for a compute command. Returns true when the caller must re-execute the
/// process (the environment is then already changed). In a process that flexnas re-executed with a
/// kernel of its choice, checks that kernel, prints the choice on stderr, and on a failed check
/// restores OpenBLAS's own pick (returns true: re-execute again).
bool prepare_blas_kernel();

/// What prepare_blas_kernel() found or did in this process, for `flexnas device` ("" before it ran).
const std::string& blas_kernel_note();

}  // namespace flexnas::models
