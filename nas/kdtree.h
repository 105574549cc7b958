#pragma once
// Nearest-neighbour search over the library embeddings with exclusion (trained / pending
// architectures), without scanning the whole library per query (defect 14 fix). Torch-free.
//
// A static k-d tree (median split on the widest dimension, leaves of up to 8 points). Every node
// keeps how many of its points are still available; excluding a point walks up from its leaf, so
// search prunes subtrees whose points are all excluded and never revisits them.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flexnas::nas {

class KdTree {
 public:
  KdTree() = default;
  /// `points` is row-major [n][dim].
  KdTree(std::vector<float> points, int64_t dim);

  int64_t size() const { return n_; }
  int64_t dim() const { return dim_; }
  int64_t available() const { return nodes_.empty() ? 0 : nodes_[0].available; }

  /// Marks a point as excluded (idempotent) / available again.
  void exclude(int64_t index);
  void include(int64_t index);
  bool excluded(int64_t index) const { return excluded_[size_t(index)] != 0; }

  /// Index of the available point nearest (Euclidean) to `query` (dim floats), or -1 if none is left.
  int64_t nearest(const float* query) const;
  /// Up to k available points, nearest first.
  std::vector<int64_t> k_nearest(const float* query, int64_t k) const;

 private:
  struct Node {
    int64_t begin = 0, end = 0;   // range in order_
    int64_t left = -1, right = -1;
    int64_t parent = -1;
    int split_dim = -1;           // -1 for leaves
    float split = 0;
    int64_t available = 0;
  };
  int64_t build(int64_t begin, int64_t end, int64_t parent);
  void adjust(int64_t index, int64_t delta);
  void search(int64_t node, const float* q, int64_t k, std::vector<std::pair<float, int64_t>>& heap) const;

  std::vector<float> points_;
  int64_t n_ = 0, dim_ = 0;
  std::vector<int64_t> order_;       // point indices, grouped by leaf
  std::vector<int64_t> leaf_of_;     // point -> leaf node
  std::vector<Node> nodes_;
  std::vector<uint8_t> excluded_;
};

}  // namespace flexnas::nas
