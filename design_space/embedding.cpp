#include "design_space/embedding.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <cmath>
#include <numeric>
#include <random>

#include "design_space/error.h"
#include "design_space/progress.h"

namespace flexnas {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// splitmix64: independent per-point streams from (seed, point).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Below this much work per loop, threads cost more than they save (a fork/join under load can
// take milliseconds with libgomp's spinning).
constexpr size_t kParallelWork = 200000;

struct Pair {
  uint32_t j;
  float d;
};

double norm_stress(const std::vector<double>& e, const std::vector<double>& d) {
  double num = 0, den = 0;
  for (size_t k = 0; k < e.size(); ++k) {
    num += (e[k] - d[k]) * (e[k] - d[k]);
    den += d[k] * d[k];
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

std::vector<std::pair<size_t, size_t>> random_pairs(size_t n, int64_t count, uint64_t seed) {
  std::vector<std::pair<size_t, size_t>> pairs;
  if (n < 2) return pairs;
  std::mt19937_64 rng(mix(seed ^ 0x5eedf00dULL));
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  pairs.reserve(size_t(count));
  while (int64_t(pairs.size()) < count) {
    const size_t i = pick(rng), j = pick(rng);
    if (i != j) pairs.emplace_back(i, j);
  }
  return pairs;
}

}  // namespace

nlohmann::ordered_json EmbeddingOptions::to_json() const {
  nlohmann::ordered_json j;
  j["method"] = "landmark-mds+stress-majorization";
  j["dim"] = dim;
  j["landmarks"] = landmarks;
  j["pairs_per_point"] = pairs_per_point;
  j["local_pairs_per_point"] = local_pairs_per_point;
  j["iterations"] = iterations;
  j["damping"] = damping;
  j["seed"] = seed;
  return j;
}

nlohmann::ordered_json EmbeddingReport::to_json() const {
  nlohmann::ordered_json j;
  j["stress"] = stress;
  j["spearman"] = spearman;
  j["landmark_stress"] = landmark_stress;
  j["holdout_pairs"] = holdout_pairs;
  j["distance_evaluations"] = distance_evaluations;
  return j;
}

void symmetric_eigen(std::vector<double> a, size_t n_, std::vector<double>& values, std::vector<double>& vectors) {
  // Householder reduction to tridiagonal form, then the implicit QL method (tred2 / tql2 of
  // EISPACK, in the JAMA formulation): O(n^3) with small constants (256 x 256 in ~20 ms).
  FLEXNAS_CHECK(a.size() == n_ * n_, "matrix size");
  const int n = int(n_);
  values.clear();
  vectors.clear();
  if (n == 0) return;
  std::vector<double>& V = a;
  auto v = [&V, n](int r, int c) -> double& { return V[size_t(r) * size_t(n) + size_t(c)]; };
  std::vector<double> d(n_), e(n_);
  for (int j = 0; j < n; ++j) d[j] = v(n - 1, j);
  for (int i = n - 1; i > 0; --i) {
    double scale = 0, h = 0;
    for (int k = 0; k < i; ++k) scale += std::abs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (int j = 0; j < i; ++j) {
        d[j] = v(i - 1, j);
        v(i, j) = 0;
        v(j, i) = 0;
      }
    } else {
      for (int k = 0; k < i; ++k) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = std::sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int j = 0; j < i; ++j) e[j] = 0;
      for (int j = 0; j < i; ++j) {
        f = d[j];
        v(j, i) = f;
        g = e[j] + v(j, j) * f;
        for (int k = j + 1; k <= i - 1; ++k) {
          g += v(k, j) * d[k];
          e[k] += v(k, j) * f;
        }
        e[j] = g;
      }
      f = 0;
      for (int j = 0; j < i; ++j) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const double hh = f / (h + h);
      for (int j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int j = 0; j < i; ++j) {
        f = d[j];
        g = e[j];
        for (int k = j; k <= i - 1; ++k) v(k, j) -= (f * e[k] + g * d[k]);
        d[j] = v(i - 1, j);
        v(i, j) = 0;
      }
    }
    d[i] = h;
  }
  for (int i = 0; i < n - 1; ++i) {  // accumulate the transformations
    v(n - 1, i) = v(i, i);
    v(i, i) = 1;
    const double h = d[i + 1];
    if (h != 0.0) {
      for (int k = 0; k <= i; ++k) d[k] = v(k, i + 1) / h;
      for (int j = 0; j <= i; ++j) {
        double g = 0;
        for (int k = 0; k <= i; ++k) g += v(k, i + 1) * v(k, j);
        for (int k = 0; k <= i; ++k) v(k, j) -= g * d[k];
      }
    }
    for (int k = 0; k <= i; ++k) v(k, i + 1) = 0;
  }
  for (int j = 0; j < n; ++j) {
    d[j] = v(n - 1, j);
    v(n - 1, j) = 0;
  }
  v(n - 1, n - 1) = 1;
  e[0] = 0;

  // Implicit QL on the tridiagonal matrix.
  for (int i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0;
  double f = 0, tst1 = 0;
  const double eps = std::ldexp(1.0, -52);
  for (int l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int m = l;
    while (m < n) {
      if (std::abs(e[m]) <= eps * tst1) break;
      ++m;
    }
    if (m == n) m = n - 1;
    if (m > l) {
      int iterations = 0;
      do {
        FLEXNAS_CHECK(++iterations < 200, "eigen-decomposition did not converge");
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1, c2 = c, c3 = c;
        const double el1 = e[l + 1];
        double s = 0, s2 = 0;
        for (int i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (int k = 0; k < n; ++k) {
            h = v(k, i + 1);
            v(k, i + 1) = s * v(k, i) + c * h;
            v(k, i) = c * v(k, i) - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  std::vector<int> idx(n_);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&d](int x, int y) { return d[size_t(x)] > d[size_t(y)]; });
  values.resize(n_);
  vectors.assign(n_ * n_, 0.0);
  for (int c = 0; c < n; ++c) {
    values[size_t(c)] = d[size_t(idx[size_t(c)])];
    for (int r = 0; r < n; ++r) vectors[size_t(r) * n_ + size_t(c)] = v(r, idx[size_t(c)]);
  }
}

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  FLEXNAS_CHECK(x.size() == y.size(), "sample sizes differ");
  const size_t n = x.size();
  if (n < 2) return 0.0;
  auto ranks = [n](const std::vector<double>& v) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
      const double avg = 0.5 * double(i + j) + 1.0;
      for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  const double mean = 0.5 * double(n + 1);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  return (sxx > 0 && syy > 0) ? sxy / std::sqrt(sxx * syy) : 0.0;
}

void evaluate_embeddings(const std::vector<std::vector<float>>& emb, const DistanceFn& distance, int64_t count,
                         uint64_t seed, double* stress, double* spearman) {
  const auto pairs = random_pairs(emb.size(), count, seed);
  std::vector<double> d(pairs.size()), e(pairs.size());
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < int64_t(pairs.size()); ++k) {
    const auto [i, j] = pairs[size_t(k)];
    d[size_t(k)] = distance(i, j);
    double s = 0;
    for (size_t c = 0; c < emb[i].size(); ++c) {
      const double diff = double(emb[i][c]) - double(emb[j][c]);
      s += diff * diff;
    }
    e[size_t(k)] = std::sqrt(s);
  }
  if (stress) *stress = norm_stress(e, d);
  if (spearman) *spearman = spearman_correlation(e, d);
}

std::vector<std::vector<float>> fit_embeddings(size_t n, const DistanceFn& distance, const EmbeddingOptions& o,
                                               EmbeddingReport* report, const std::vector<int64_t>* order) {
  FLEXNAS_CHECK(o.dim > 0, "embedding dim must be positive");
  const size_t d = size_t(o.dim);
  EmbeddingReport local;
  EmbeddingReport& r = report ? *report : local;
  r = EmbeddingReport{};
  if (n == 0) return {};
  if (n == 1) return {std::vector<float>(d, 0.0f)};
  FLEXNAS_CHECK(!order || order->size() == n, "order must be a permutation of the points");
  double dist_seconds = 0;
  const auto fit_start = Clock::now();

  // 1. Landmarks and the N x k distances to them.
  const size_t k = std::min(n, size_t(std::max<int64_t>(o.landmarks, 2)));
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(mix(o.seed));
  for (size_t i = 0; i < k; ++i) std::swap(perm[i], perm[i + std::uniform_int_distribution<size_t>(0, n - 1 - i)(rng)]);
  std::vector<size_t> landmarks(perm.begin(), perm.begin() + std::ptrdiff_t(k));
  std::sort(landmarks.begin(), landmarks.end());

  auto t = Clock::now();
  std::vector<float> to_landmark(n * k);  // [n][k] squared distances
  {
    auto progress = o.progress ? std::make_unique<Progress>("distances to landmarks", n, "graphs") : nullptr;
#pragma omp parallel for schedule(dynamic, 256) if (n * k > kParallelWork)
    for (int64_t i = 0; i < int64_t(n); ++i) {
      for (size_t l = 0; l < k; ++l) {
        const double dist = distance(size_t(i), landmarks[l]);
        to_landmark[size_t(i) * k + l] = float(dist * dist);
      }
      if (progress) progress->advance();
    }
  }
  dist_seconds += since(t);
  r.distance_evaluations += int64_t(n * k);

  // 2. Classical MDS on the landmarks: B = -1/2 J D^2 J, top eigenpairs.
  std::vector<double> mean_sq(k, 0.0);  // column means of the landmark D^2
  for (size_t a = 0; a < k; ++a)
    for (size_t b = 0; b < k; ++b) mean_sq[b] += to_landmark[landmarks[a] * k + b];
  for (double& m : mean_sq) m /= double(k);
  double grand = 0;
  for (double m : mean_sq) grand += m;
  grand /= double(k);
  std::vector<double> B(k * k);
  for (size_t a = 0; a < k; ++a)
    for (size_t b = 0; b < k; ++b) {
      // symmetrise (distances are symmetric; float rounding is not)
      const double sq = 0.5 * (double(to_landmark[landmarks[a] * k + b]) + double(to_landmark[landmarks[b] * k + a]));
      B[a * k + b] = -0.5 * (sq - mean_sq[a] - mean_sq[b] + grand);
    }
  std::vector<double> values, vectors;
  symmetric_eigen(B, k, values, vectors);
  const size_t usable = std::min(d, k);
  std::vector<double> pinv(usable * k, 0.0);  // [c][l] = v_lc / sqrt(lambda_c)
  for (size_t c = 0; c < usable; ++c) {
    if (!(values[c] > 1e-9 * std::max(values[0], 1e-300))) continue;
    for (size_t l = 0; l < k; ++l) pinv[c * k + l] = vectors[l * k + c] / std::sqrt(values[c]);
  }
  std::vector<double> x(n * d, 0.0);
#pragma omp parallel for schedule(static) if (n * k > kParallelWork)
  for (int64_t i = 0; i < int64_t(n); ++i)
    for (size_t c = 0; c < usable; ++c) {
      double s = 0;
      for (size_t l = 0; l < k; ++l) s += pinv[c * k + l] * (double(to_landmark[size_t(i) * k + l]) - mean_sq[l]);
      x[size_t(i) * d + c] = -0.5 * s;
    }
  // Coordinates MDS left empty (fewer positive eigenvalues than d) get a tiny seeded jitter so the
  // refinement can use them.
  {
    double scale = 0;
    for (size_t c = 0; c < usable; ++c) scale = std::max(scale, std::sqrt(std::max(values[c], 0.0) / double(k)));
    scale = std::max(scale, 1.0) * 1e-3;
    for (size_t i = 0; i < n; ++i) {
      std::mt19937_64 prng(mix(o.seed * 0x100000001b3ULL + i + 1));
      std::normal_distribution<double> noise(0.0, scale);
      for (size_t c = 0; c < d; ++c)
        if (c >= usable || pinv[c * k] == 0.0) x[i * d + c] = noise(prng);
    }
  }
  to_landmark.clear();
  to_landmark.shrink_to_fit();

  // 3. Refinement partners: random ones and, given an order, neighbours in it.
  const size_t m_rand = size_t(std::max<int64_t>(o.pairs_per_point, 0));
  const size_t m_local = order ? std::min(size_t(std::max<int64_t>(o.local_pairs_per_point, 0)), n - 1) : 0;
  const size_t m = m_rand + m_local;
  std::vector<int64_t> position(order ? n : 0);
  if (order)
    for (size_t p = 0; p < n; ++p) position[size_t((*order)[p])] = int64_t(p);
  std::vector<Pair> pairs(n * m);
  t = Clock::now();
  {
    auto progress = o.progress ? std::make_unique<Progress>("refinement pair distances", n, "graphs") : nullptr;
#pragma omp parallel for schedule(dynamic, 256) if (n * m > kParallelWork)
    for (int64_t i = 0; i < int64_t(n); ++i) {
      std::mt19937_64 prng(mix(o.seed ^ (0xa5a5a5a5ULL + uint64_t(i) * 0x9e3779b97f4a7c15ULL)));
      std::uniform_int_distribution<size_t> pick(0, n - 2);
      Pair* out = &pairs[size_t(i) * m];
      for (size_t q = 0; q < m_rand; ++q) {
        size_t j = pick(prng);
        if (j >= size_t(i)) ++j;  // never itself
        out[q] = Pair{uint32_t(j), float(distance(size_t(i), j))};
      }
      if (m_local) {
        // The m_local closest positions around i in the order (alternating right, left).
        const int64_t p = position[size_t(i)];
        int64_t lo = p - 1, hi = p + 1;
        for (size_t q = 0; q < m_local; ++q) {
          int64_t pick_pos;
          const bool right_ok = hi < int64_t(n), left_ok = lo >= 0;
          if (right_ok && (!left_ok || (q % 2 == 0))) pick_pos = hi++;
          else pick_pos = lo--;
          const size_t j = size_t((*order)[size_t(pick_pos)]);
          out[m_rand + q] = Pair{uint32_t(j), float(distance(size_t(i), j))};
        }
      }
      if (progress) progress->advance();
    }
  }
  dist_seconds += since(t);
  r.distance_evaluations += int64_t(n * m);

  // Held-out pairs for the report (distinct stream from the refinement partners).
  const auto holdout = random_pairs(n, o.holdout_pairs, o.seed + 1);
  std::vector<double> hd(holdout.size()), he(holdout.size());
  t = Clock::now();
#pragma omp parallel for schedule(static) if (holdout.size() > kParallelWork)
  for (int64_t q = 0; q < int64_t(holdout.size()); ++q) hd[size_t(q)] = distance(holdout[size_t(q)].first, holdout[size_t(q)].second);
  dist_seconds += since(t);
  r.distance_evaluations += int64_t(holdout.size());
  auto holdout_embedded = [&](const std::vector<double>& pos) {
#pragma omp parallel for schedule(static) if (holdout.size() * d > kParallelWork)
    for (int64_t q = 0; q < int64_t(holdout.size()); ++q) {
      const size_t i = holdout[size_t(q)].first, j = holdout[size_t(q)].second;
      double s = 0;
      for (size_t c = 0; c < d; ++c) s += (pos[i * d + c] - pos[j * d + c]) * (pos[i * d + c] - pos[j * d + c]);
      he[size_t(q)] = std::sqrt(s);
    }
  };
  holdout_embedded(x);
  r.landmark_stress = norm_stress(he, hd);

  // 4. Damped per-point Guttman updates: x_i <- mean_j (x_j + d_ij (x_i - x_j) / |x_i - x_j|).
  if (m > 0) {
    std::vector<double> next(n * d);
    auto progress = o.progress ? std::make_unique<Progress>("embedding refinement", uint64_t(std::max<int64_t>(o.iterations, 0)), "sweeps") : nullptr;
    for (int64_t it = 0; it < o.iterations; ++it) {
#pragma omp parallel for schedule(static) if (n * m * d > kParallelWork)
      for (int64_t ii = 0; ii < int64_t(n); ++ii) {
        const size_t i = size_t(ii);
        const double* xi = &x[i * d];
        double target[64];
        double* acc = d <= 64 ? target : nullptr;
        std::vector<double> big;
        if (!acc) {
          big.assign(d, 0.0);
          acc = big.data();
        } else {
          std::fill(acc, acc + d, 0.0);
        }
        for (size_t q = 0; q < m; ++q) {
          const Pair& pr = pairs[i * m + q];
          const double* xj = &x[size_t(pr.j) * d];
          double s = 0;
          for (size_t c = 0; c < d; ++c) s += (xi[c] - xj[c]) * (xi[c] - xj[c]);
          const double len = std::sqrt(s);
          const double ratio = len > 1e-12 ? double(pr.d) / len : 0.0;
          for (size_t c = 0; c < d; ++c) acc[c] += xj[c] + ratio * (xi[c] - xj[c]);
        }
        for (size_t c = 0; c < d; ++c) next[i * d + c] = xi[c] + o.damping * (acc[c] / double(m) - xi[c]);
      }
      std::swap(x, next);
      if (progress) progress->advance();
    }
  }
  holdout_embedded(x);
  r.stress = norm_stress(he, hd);
  r.spearman = spearman_correlation(he, hd);
  r.holdout_pairs = int64_t(holdout.size());
  r.seconds_distances = dist_seconds;
  r.seconds_fit = since(fit_start) - dist_seconds;

  std::vector<std::vector<float>> out(n, std::vector<float>(d));
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < d; ++c) out[i][c] = float(x[i * d + c]);
  return out;
}

}  // namespace flexnas
