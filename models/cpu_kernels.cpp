#include "models/cpu_kernels.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace flexnas::models {

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(avx, "avx");
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512, "avx512");
  add(avx512_bf16, "avx512_bf16");
  add(amx_bf16, "amx_bf16");
  return s.empty() ? "none" : s;
}

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool avx_bit = c & (1u << 28), fma_bit = c & (1u << 12);
  uint64_t xcr0 = 0;
  if (osxsave) {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (uint64_t(hi) << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;    // XTILECFG, XTILEDATA
  f.avx = avx_bit && os_avx;
  f.fma = fma_bit && os_avx;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b & (1u << 5)) && os_avx;
    const unsigned avx512_mask = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);  // F DQ CD BW VL
    f.avx512 = (b & avx512_mask) == avx512_mask && os_avx512;
    f.amx_bf16 = (d & (1u << 22)) && (d & (1u << 24)) && os_amx;
    const unsigned max_subleaf = a;
    if (max_subleaf >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512_bf16 = (a & (1u << 5)) && f.avx512;
    }
  }
#endif
  return f;
}

std::string best_blas_kernel(const CpuFeatures& cpu) {
  if (cpu.avx512) return cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  if (cpu.avx) return "Sandybridge";
  return "";
}

int blas_kernel_rank(const std::string& name) {
  for (const char* n : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (name == n) return 3;
  for (const char* n : {"Haswell", "Zen", "Excavator"})
    if (name == n) return 2;
  for (const char* n : {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller"})
    if (name == n) return 1;
  return 0;
}

std::string current_blas_kernel() {
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!fn) return "";
  const char* name = fn();
  return name ? std::string(name) : std::string();
}

BlasKernelDecision decide_blas_kernel(const CpuFeatures& cpu, const std::string& current, const char* env_coretype,
                                      const char* refused) {
  BlasKernelDecision d;
  if (env_coretype) {
    d.reason = std::string("OPENBLAS_CORETYPE=") + env_coretype + " was set outside flexnas: left as it is";
    return d;
  }
  if (current.empty()) {
    d.reason = "the BLAS is not OpenBLAS: nothing to choose";
    return d;
  }
  const std::string best = best_blas_kernel(cpu);
  if (best.empty() || blas_kernel_rank(current) >= blas_kernel_rank(best)) {
    d.reason = "OpenBLAS runs " + current + ", right for this CPU (" + cpu.summary() + ")";
    return d;
  }
  if (refused && best == refused) {
    d.reason = "OpenBLAS runs " + current + "; " + best + " failed the numeric check and stays refused";
    return d;
  }
  d.kernel = best;
  d.reason = "OpenBLAS picked its generic " + current + " kernel; this CPU has " + cpu.summary() + ": using " + best;
  return d;
}

SgemmFn process_sgemm() { return reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "sgemm_")); }

std::string check_sgemm(SgemmFn sgemm) {
  if (!sgemm) return "no sgemm_ in the process";
  uint64_t state = 0x9e3779b97f4a7c15ull;  // a fixed seed: the same matrices every time
  auto uniform = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float(double(state >> 40) / double(1ull << 24) * 2.0 - 1.0);  // [-1, 1)
  };
  struct Case {
    int m, n, k;
    char ta, tb;
  };
  // Odd edges exercise the kernels' tails; 192 the blocked path with packing.
  for (const Case cs : {Case{67, 45, 129, 'N', 'N'}, Case{33, 70, 17, 'T', 'N'}, Case{50, 31, 64, 'N', 'T'},
                        Case{192, 192, 192, 'N', 'N'}}) {
    const int m = cs.m, n = cs.n, k = cs.k;
    std::vector<float> a(size_t(m) * k), b(size_t(k) * n), c(size_t(m) * n, 0.5f);
    for (float& x : a) x = uniform();
    for (float& x : b) x = uniform();
    const int lda = cs.ta == 'N' ? m : k, ldb = cs.tb == 'N' ? k : n, ldc = m;
    const float alpha = 1.0f, beta = 0.0f;
    sgemm(&cs.ta, &cs.tb, &m, &n, &k, &alpha, a.data(), &lda, b.data(), &ldb, &beta, c.data(), &ldc);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double ref = 0, scale = 0;
        for (int p = 0; p < k; ++p) {
          const double x = cs.ta == 'N' ? a[size_t(p) * m + i] : a[size_t(i) * k + p];
          const double y = cs.tb == 'N' ? b[size_t(j) * k + p] : b[size_t(p) * n + j];
          ref += x * y;
          scale += std::fabs(x * y);
        }
        const double got = c[size_t(j) * m + i];
        // Rounding of an fp32 sum of k products stays near sqrt(k) * 2^-24 * sum|x*y| (a few 1e-7
        // relative here); 1e-5 of sum|x*y| leaves a wide margin and still catches a wrong kernel.
        if (!(std::fabs(got - ref) <= 1e-5 * scale + 1e-6))
          return "sgemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " " + cs.ta +
                 cs.tb + ": element (" + std::to_string(i) + "," + std::to_string(j) + ") is " + std::to_string(got) +
                 ", expected " + std::to_string(ref);
      }
  }
  return "";
}

namespace {
std::string& note() {
  static std::string text;
  return text;
}
}  // namespace

const std::string& blas_kernel_note() { return note(); }

bool prepare_blas_kernel() {
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  const char* chosen = std::getenv(kBlasChosenEnv);
  if (env && chosen && std::string(env) == chosen) {
    // Re-executed with our choice: keep it only if it computes right.
    const std::string detected = std::getenv(kBlasDetectedEnv) ? std::getenv(kBlasDetectedEnv) : "?";
    const std::string problem = check_sgemm(process_sgemm());
    if (problem.empty()) {
      note() = "OpenBLAS had picked " + detected + " on this CPU; flexnas set OPENBLAS_CORETYPE=" + env +
               " (numeric check passed)";
      std::cerr << "flexnas: OpenBLAS kernel " << current_blas_kernel() << " (" << note() << ")\n";
      ::unsetenv(kBlasChosenEnv);  // children inherit OPENBLAS_CORETYPE as a set value
      ::unsetenv(kBlasDetectedEnv);
      return false;
    }
    std::cerr << "flexnas: refusing OpenBLAS kernel " << env << ": " << problem << "; going back to " << detected
              << "\n";
    ::setenv(kBlasRefusedEnv, env, 1);
    ::unsetenv("OPENBLAS_CORETYPE");
    ::unsetenv(kBlasChosenEnv);
    ::unsetenv(kBlasDetectedEnv);
    return true;
  }
  const std::string current = current_blas_kernel();
  const BlasKernelDecision d = decide_blas_kernel(cpu_features(), current, env, std::getenv(kBlasRefusedEnv));
  note() = d.reason;
  if (d.kernel.empty()) return false;
  ::setenv("OPENBLAS_CORETYPE", d.kernel.c_str(), 1);
  ::setenv(kBlasChosenEnv, d.kernel.c_str(), 1);
  ::setenv(kBlasDetectedEnv, current.c_str(), 1);
  return true;
}

}  // namespace flexnas::models
