#include "design_space/neighbors.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <unordered_map>

#include "design_space/distance.h"
#include "design_space/error.h"
#include "design_space/progress.h"

namespace flexnas {

LabelSequences label_sequences(const std::vector<Architecture>& archs) {
  LabelSequences seqs;
  std::unordered_map<std::string, int32_t> ids;
  seqs.offsets.reserve(archs.size() + 1);
  seqs.offsets.push_back(0);
  for (const Architecture& arch : archs) {
    for (const std::string& label : vertex_labels(arch)) {
      auto [it, inserted] = ids.emplace(label, int32_t(seqs.names.size()));
      if (inserted) seqs.names.push_back(label);
      seqs.ids.push_back(it->second);
    }
    seqs.offsets.push_back(seqs.ids.size());
  }
  return seqs;
}

int64_t common_prefix(const LabelSequences& seqs, size_t a, size_t b) {
  const size_t n = std::min(seqs.length(a), seqs.length(b));
  const int32_t *x = seqs.data(a), *y = seqs.data(b);
  size_t k = 0;
  while (k < n && x[k] == y[k]) ++k;
  return int64_t(k);
}

std::vector<int64_t> prefix_order(const LabelSequences& seqs) {
  std::vector<int64_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&seqs](int64_t a, int64_t b) {
    const int32_t *x = seqs.data(size_t(a)), *y = seqs.data(size_t(b));
    const size_t nx = seqs.length(size_t(a)), ny = seqs.length(size_t(b));
    const bool less = std::lexicographical_compare(x, x + nx, y, y + ny);
    if (less) return true;
    if (std::lexicographical_compare(y, y + ny, x, x + nx)) return false;
    return a < b;
  });
  return order;
}

std::vector<std::vector<int64_t>> biased_neighbors(const LabelSequences& seqs,
                                                   const std::vector<std::vector<float>>& embeddings,
                                                   const NeighborOptions& options) {
  const size_t n = seqs.size();
  FLEXNAS_CHECK(options.k >= 0, "k must be non-negative");
  FLEXNAS_CHECK(embeddings.empty() || embeddings.size() == n, "one embedding per graph");
  const size_t k = std::min(size_t(options.k), n ? n - 1 : 0);
  std::vector<std::vector<int64_t>> result(n);
  if (n == 0 || k == 0) return result;

  const std::vector<int64_t> order = prefix_order(seqs);
  std::vector<int64_t> lcp(n, 0);  // lcp[q] = overlap(order[q-1], order[q])
  for (size_t q = 1; q < n; ++q) lcp[q] = common_prefix(seqs, size_t(order[q - 1]), size_t(order[q]));
  std::vector<size_t> position(n);
  for (size_t q = 0; q < n; ++q) position[size_t(order[q])] = q;

  auto distance2 = [&embeddings](size_t a, size_t b) -> double {
    if (embeddings.empty() || embeddings[a].empty() || embeddings[b].empty()) return 0.0;
    const std::vector<float>& x = embeddings[a];
    const std::vector<float>& y = embeddings[b];
    double s = 0;
    for (size_t c = 0; c < x.size() && c < y.size(); ++c) {
      const double diff = double(x[c]) - double(y[c]);
      s += diff * diff;
    }
    return s;
  };

  auto progress = options.progress ? std::make_unique<Progress>("neighbours", n, "graphs") : nullptr;
#pragma omp parallel
  {
    std::vector<std::pair<double, int64_t>> group;  // (squared embedding distance, index)
#pragma omp for schedule(dynamic, 64)
    for (int64_t ii = 0; ii < int64_t(n); ++ii) {
      const size_t i = size_t(ii);
      std::vector<int64_t>& out = result[i];
      out.reserve(k);
      size_t lo = position[i], hi = position[i];
      while (out.size() < k && (lo > 0 || hi + 1 < n)) {
        // The next overlap level: the larger of the two LCPs at the run's borders.
        const int64_t left = lo > 0 ? lcp[lo] : -1;
        const int64_t right = hi + 1 < n ? lcp[hi + 1] : -1;
        const int64_t level = std::max(left, right);
        group.clear();
        while (lo > 0 && lcp[lo] >= level) {
          --lo;
          group.emplace_back(distance2(i, size_t(order[lo])), order[lo]);
        }
        while (hi + 1 < n && lcp[hi + 1] >= level) {
          ++hi;
          group.emplace_back(distance2(i, size_t(order[hi])), order[hi]);
        }
        const size_t need = k - out.size();
        if (group.size() > need) {
          std::partial_sort(group.begin(), group.begin() + std::ptrdiff_t(need), group.end());
          group.resize(need);
        } else {
          std::sort(group.begin(), group.end());
        }
        for (const auto& [dist, j] : group) out.push_back(j);
      }
      if (progress) progress->advance();
    }
  }
  return result;
}

}  // namespace flexnas
