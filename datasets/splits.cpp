#include "datasets/splits.h"

#include <cmath>
#include <map>

#include "design_space/error.h"

namespace flexnas::datasets {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rng::below(uint64_t n) {
  FLEXNAS_CHECK(n > 0, "Rng::below(0)");
  while (true) {
    const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    const auto low = static_cast<uint64_t>(m);
    if (low >= n || low >= (-n) % n) return static_cast<uint64_t>(m >> 64);
  }
}

uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x243f6a8885a308d3ULL;
  for (uint64_t p : parts) {
    Rng r(h ^ p);
    h = r.next();
  }
  return h;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[rng.below(static_cast<uint64_t>(i) + 1)]);
  return p;
}

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kDev: return "dev";
    case Split::kTest: return "test";
  }
  return "?";
}

std::vector<Split> stratified_split(const std::vector<int64_t>& strata, uint64_t seed, const SplitFractions& f) {
  if (f.dev < 0 || f.test < 0 || f.dev + f.test >= 1.0)
    throw ConfigError("error: split fractions: dev " + std::to_string(f.dev) + " + test " + std::to_string(f.test) +
                      " must be >= 0 and sum to less than 1");
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < strata.size(); ++i) groups[strata[i]].push_back(i);
  std::vector<Split> out(strata.size(), Split::kTrain);
  for (const auto& [stratum, items] : groups) {
    const auto n = static_cast<int64_t>(items.size());
    auto n_dev = static_cast<int64_t>(std::llround(static_cast<double>(n) * f.dev));
    auto n_test = static_cast<int64_t>(std::llround(static_cast<double>(n) * f.test));
    if (n >= 3) {
      if (f.dev > 0 && n_dev == 0) n_dev = 1;
      if (f.test > 0 && n_test == 0) n_test = 1;
    }
    while (n_dev + n_test >= n && n_dev + n_test > 0) (n_test >= n_dev ? n_test : n_dev)--;
    const auto order = permutation(n, mix_seed({seed, static_cast<uint64_t>(stratum)}));
    for (int64_t k = 0; k < n; ++k) {
      const size_t item = items[static_cast<size_t>(order[static_cast<size_t>(k)])];
      out[item] = k < n_dev ? Split::kDev : (k < n_dev + n_test ? Split::kTest : Split::kTrain);
    }
  }
  return out;
}

}  // namespace flexnas::datasets
