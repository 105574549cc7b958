#include "nas/kdtree.h"

#include <algorithm>
#include <limits>

#include "design_space/error.h"

namespace flexnas::nas {
namespace {
constexpr int64_t kLeafSize = 8;
}

KdTree::KdTree(std::vector<float> points, int64_t dim) : points_(std::move(points)), dim_(dim) {
  FLEXNAS_CHECK(dim > 0 && points_.size() % size_t(dim) == 0, "points size ", points_.size(), " is not a multiple of dim ", dim);
  n_ = int64_t(points_.size()) / dim;
  order_.resize(size_t(n_));
  for (int64_t i = 0; i < n_; ++i) order_[size_t(i)] = i;
  leaf_of_.assign(size_t(n_), -1);
  excluded_.assign(size_t(n_), 0);
  nodes_.reserve(size_t(2 * (n_ / kLeafSize + 1) + 1));
  if (n_ > 0) build(0, n_, -1);
}

int64_t KdTree::build(int64_t begin, int64_t end, int64_t parent) {
  const int64_t id = int64_t(nodes_.size());
  nodes_.push_back(Node{});
  nodes_[size_t(id)].begin = begin;
  nodes_[size_t(id)].end = end;
  nodes_[size_t(id)].parent = parent;
  nodes_[size_t(id)].available = end - begin;
  if (end - begin <= kLeafSize) {
    for (int64_t i = begin; i < end; ++i) leaf_of_[size_t(order_[size_t(i)])] = id;
    return id;
  }
  // Split on the dimension with the widest spread, at the median.
  int best_dim = 0;
  float best_spread = -1;
  for (int64_t d = 0; d < dim_; ++d) {
    float lo = std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::lowest();
    for (int64_t i = begin; i < end; ++i) {
      const float v = points_[size_t(order_[size_t(i)] * dim_ + d)];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    if (hi - lo > best_spread) {
      best_spread = hi - lo;
      best_dim = int(d);
    }
  }
  const int64_t mid = begin + (end - begin) / 2;
  std::nth_element(order_.begin() + begin, order_.begin() + mid, order_.begin() + end, [&](int64_t a, int64_t b) {
    const float va = points_[size_t(a * dim_ + best_dim)], vb = points_[size_t(b * dim_ + best_dim)];
    return va < vb || (va == vb && a < b);
  });
  const float split = points_[size_t(order_[size_t(mid)] * dim_ + best_dim)];
  const int64_t left = build(begin, mid, id);
  const int64_t right = build(mid, end, id);
  Node& node = nodes_[size_t(id)];
  node.split_dim = best_dim;
  node.split = split;
  node.left = left;
  node.right = right;
  return id;
}

void KdTree::adjust(int64_t index, int64_t delta) {
  for (int64_t node = leaf_of_[size_t(index)]; node >= 0; node = nodes_[size_t(node)].parent)
    nodes_[size_t(node)].available += delta;
}

void KdTree::exclude(int64_t index) {
  FLEXNAS_CHECK(index >= 0 && index < n_, "index ", index, " out of range");
  if (excluded_[size_t(index)]) return;
  excluded_[size_t(index)] = 1;
  adjust(index, -1);
}

void KdTree::include(int64_t index) {
  FLEXNAS_CHECK(index >= 0 && index < n_, "index ", index, " out of range");
  if (!excluded_[size_t(index)]) return;
  excluded_[size_t(index)] = 0;
  adjust(index, +1);
}

void KdTree::search(int64_t id, const float* q, int64_t k, std::vector<std::pair<float, int64_t>>& heap) const {
  const Node& node = nodes_[size_t(id)];
  if (node.available == 0) return;
  if (node.split_dim < 0) {
    for (int64_t i = node.begin; i < node.end; ++i) {
      const int64_t p = order_[size_t(i)];
      if (excluded_[size_t(p)]) continue;
      const float* x = &points_[size_t(p * dim_)];
      float d2 = 0;
      for (int64_t d = 0; d < dim_; ++d) d2 += (x[d] - q[d]) * (x[d] - q[d]);
      const std::pair<float, int64_t> entry{d2, p};
      if (int64_t(heap.size()) < k) {
        heap.push_back(entry);
        std::push_heap(heap.begin(), heap.end());
      } else if (entry < heap.front()) {
        std::pop_heap(heap.begin(), heap.end());
        heap.back() = entry;
        std::push_heap(heap.begin(), heap.end());
      }
    }
    return;
  }
  const float diff = q[node.split_dim] - node.split;
  const int64_t near = diff < 0 ? node.left : node.right;
  const int64_t far = diff < 0 ? node.right : node.left;
  search(near, q, k, heap);
  if (int64_t(heap.size()) < k || diff * diff <= heap.front().first) search(far, q, k, heap);
}

std::vector<int64_t> KdTree::k_nearest(const float* query, int64_t k) const {
  std::vector<std::pair<float, int64_t>> heap;  // max-heap on (distance², index)
  if (n_ > 0 && k > 0) search(0, query, k, heap);
  std::sort_heap(heap.begin(), heap.end());
  std::vector<int64_t> out;
  out.reserve(heap.size());
  for (const auto& e : heap) out.push_back(e.second);
  return out;
}

int64_t KdTree::nearest(const float* query) const {
  auto r = k_nearest(query, 1);
  return r.empty() ? -1 : r.front();
}

}  // namespace flexnas::nas
