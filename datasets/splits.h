#pragma once
// Deterministic seeded splits for corpora that have none, and the portable RNG behind them (the
// same numbers on every platform and standard library, unlike std::shuffle/std::uniform_*).
#include <cstdint>
#include <string>
#include <vector>

namespace flexnas::datasets {

/// SplitMix64: tiny, fast, portable.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, n), n > 0 (Lemire's multiply-shift, unbiased by rejection).
  uint64_t below(uint64_t n);
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

/// A seed derived from several values (order matters): e.g. mix_seed({seed, epoch}).
uint64_t mix_seed(std::initializer_list<uint64_t> parts);

/// In-place Fisher-Yates shuffle of 0..n-1 with Rng(seed).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

enum class Split { kTrain = 0, kDev = 1, kTest = 2 };
const char* split_name(Split s);

struct SplitFractions {
  double dev = 0.1;   // fraction of each stratum in dev
  double test = 0.1;  // fraction of each stratum in test
};

/// Assigns every item a split. Items are grouped by `strata` (e.g. label or genre); within a stratum
/// of n items, round(n * dev) go to dev and round(n * test) to test (at least one each when n >= 3),
/// chosen by a shuffle seeded by (seed, stratum). Deterministic in (strata, seed, fractions).
std::vector<Split> stratified_split(const std::vector<int64_t>& strata, uint64_t seed,
                                    const SplitFractions& fractions = {});

}  // namespace flexnas::datasets
