#pragma once
// Weight transfer between any two architectures of the same model-dict format (spec §6, with
// defects 25, 29, 30 and 31 fixed). See docs/transfer.md.
//
// Everything is driven by a tensor layout computed from the model dict alone (tensor_layout): every
// parameter's name and shape, and what each axis means. Axes are
//   - hidden widths h_i (the residual stream): od copies the first min(h_s, h_t) entries; rp maps the
//     source through one random coordinate map per (source width, target width) pair
//     (ProjectionCache: widening replicates random units, narrowing selects a random subset), shared
//     by every tensor meeting at that width;
//   - head-structured attention widths (groups x heads x per-head dims): common heads, first dims;
//   - ordered axes (FFN widths, token types): the first min entries;
//   - centred axes (kernel taps, relative distances): aligned at their centre;
//   - exact axes (vocabulary, labels): transferred only when equal.
// A tensor is transferred when both architectures have it under the same name with the same
// compatibility key (standard-format attention cores: the operation type; heads: the head type), so
// layer i maps to layer i, dense_j to dense_j, and a layer whose operation differs still receives its
// FFN, output block, LayerNorms and biases (defect 30). The overlap (fraction of the target's
// parameters that receive source values) comes from the same plan without building any model
// (defect 25).
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/enum_names.h"
#include "design_space/library.h"
#include "models/flex_model.h"

namespace flexnas::transfer {

enum class TransferMode { kOrdered, kRandomProjection };
/// The spellings: od, rp.
const EnumNames<TransferMode>& transfer_mode_names();
/// "od" | "rp".
std::string mode_name(TransferMode mode);
/// Parses "od" | "rp" (case-insensitive); ConfigError naming `what` otherwise.
TransferMode parse_mode(const std::string& text, const std::string& what);

/// One axis of a parameter tensor.
struct Axis {
  enum class Kind {
    kHiddenOut,   // a vector in the hidden space h (rows of a Linear into h, biases, LN beta, embeddings)
    kHiddenIn,    // the input side of a Linear reading h
    kHiddenDiag,  // per-unit scale over h (LayerNorm gamma, depthwise channels): rp averages
    kHeads,       // groups x heads x dim (attention widths); common groups/heads, first dims
    kOrdered,     // first min entries
    kCentered,    // aligned at the centre (odd sizes: kernel taps, 2P-1 distances)
    kExact,       // only when sizes are equal (vocabulary, labels)
  };
  Kind kind = Kind::kOrdered;
  int64_t size = 0;           // extent of the axis
  int64_t groups = 1;         // kHeads: size = groups * heads * dim
  int64_t heads = 1;
  int64_t dim = 0;
  bool centered_dim = false;  // kHeads: the per-head entries are centred kernel taps
};

/// One parameter tensor of a FlexModel, known from the model dict.
struct TensorSpec {
  std::string name;    // "bert.encoder.layer.0.attention.self.query.weight"
  std::vector<Axis> axes;
  std::string compat;  // transfer only between tensors with equal keys ("sa", "head:mlm", "")
  std::string block;   // "embeddings", "layer 0", ..., "head"
  std::vector<int64_t> shape() const;
  int64_t numel() const;
};

/// Every parameter of FlexModel(arch, options), in registration order (tested against the model).
std::vector<TensorSpec> tensor_layout(const Architecture& arch, const models::ModelOptions& options);

struct TransferOptions {
  TransferMode mode = TransferMode::kOrdered;
  uint64_t seed = 0;  // draws the rp projections (one per width pair)
};

/// How one target tensor is filled.
enum class TensorFill { kCopied, kSliced, kProjected, kFresh };
std::string fill_name(TensorFill fill);  // "copied" | "sliced" | "projected" | "fresh"

struct TensorTransfer {
  std::string name;
  std::string block;
  TensorFill fill = TensorFill::kFresh;
  int64_t numel = 0;     // the target tensor's elements
  int64_t received = 0;  // elements that receive source values
};

struct TransferPlan {
  std::vector<TensorTransfer> tensors;  // one per target parameter, layout order
  int64_t received = 0;
  int64_t total = 0;
  double overlap() const { return total ? double(received) / double(total) : 0.0; }
};

/// The plan from the two model dicts alone. Throws ConfigError when the formats differ.
TransferPlan plan_transfer(const Architecture& source, const Architecture& target, const models::ModelOptions& source_options,
                           const models::ModelOptions& target_options, TransferMode mode);
/// Fraction of the target's parameters that receive source values (same options on both sides).
double transfer_overlap(const Architecture& source, const Architecture& target,
                        const models::ModelOptions& options = {}, TransferMode mode = TransferMode::kOrdered);

/// One projection per (source width, target width) pair, drawn from the seed and the pair only (not
/// from the order in which tensors ask), so every tensor meeting at a width uses the same map:
///   - widening (t > s): random replication: target units 0..s-1 keep their source unit, each further
///     unit repeats a randomly chosen one; an entry is 1/sqrt(copies of that source unit), so the
///     columns are orthonormal;
///   - narrowing (t < s): random selection of t source units (in order), one 1 per row;
///   - equal widths: Q = I.
/// Q (t x s) has one non-negative entry per row, so per-unit gains (LayerNorm) carry over exactly and
/// applying it is a gather. With alpha = sqrt(t/s) for t > s (1 otherwise), a hidden state x_s of
/// the source corresponds to x_t = alpha Q x_s: each unit keeps its value when copies are even, so
/// LayerNorm's statistics are kept. Measured against dense rotations in transfer.cpp.
class ProjectionCache {
 public:
  explicit ProjectionCache(uint64_t seed) : seed_(seed) {}
  /// Q: [t, s] float64.
  const torch::Tensor& q(int64_t s, int64_t t);
  double alpha(int64_t s, int64_t t) const { return t > s ? std::sqrt(double(t) / double(s)) : 1.0; }
  /// The matrix applied along an axis of the given kind: out alpha Q, in Q / alpha, diag the row-
  /// normalised Q∘Q (a weighted average of the source's per-unit values). [t, s] float64.
  torch::Tensor axis_matrix(Axis::Kind kind, int64_t s, int64_t t);
  /// Number of distinct pairs drawn so far (tests: sharing).
  size_t size() const { return cache_.size(); }

 private:
  uint64_t seed_;
  std::map<std::pair<int64_t, int64_t>, torch::Tensor> cache_;
};

/// Copies/projects `source_tensors` (named as tensor_layout(source_arch) says, shapes checked:
/// ConfigError naming `source_where` and the tensor) into the target model's parameters; the rest
/// keep their initialisation. Returns the plan that was executed.
TransferPlan transfer_weights(const Architecture& source_arch, const models::ModelOptions& source_options,
                              const std::map<std::string, torch::Tensor>& source_tensors, models::FlexModelImpl& target,
                              const TransferOptions& options, ProjectionCache* projections = nullptr,
                              const std::string& source_where = "source");
/// Same between two models.
TransferPlan transfer_model(models::FlexModelImpl& source, models::FlexModelImpl& target, const TransferOptions& options,
                            ProjectionCache* projections = nullptr);

/// Per-block summary of a plan: elements copied, sliced, projected, fresh.
struct BlockSummary {
  std::string block;
  int64_t copied = 0, sliced = 0, projected = 0, fresh = 0, total = 0;
};
std::vector<BlockSummary> summarize_blocks(const TransferPlan& plan);

/// The warm-start source chosen for an architecture.
struct WarmStart {
  int64_t index = -1;      // library index of the source (-1: a model from outside the library)
  std::string hash;
  std::string checkpoint;  // its checkpoint directory
  double overlap = 0.0;
};

/// A trained model that may give its weights, e.g. to a campaign's trial: the campaign's own
/// trained library neighbours, or a parent campaign's models (hierarchical refinement).
struct WarmStartCandidate {
  std::string hash;
  const Architecture* arch = nullptr;
  std::string checkpoint;
  models::ModelOptions options;  // the checkpoint's model options (the target uses the same)
  int64_t index = -1;            // library index, -1 when outside the library
};

/// Among `candidates` ordered nearest first, the one with the largest overlap >= threshold onto
/// `target`; ties go to the nearer one (defect 25: the reference prefers the farther). Candidates in
/// another model-dict format are skipped. Computed from the model dicts alone.
std::optional<WarmStart> choose_warm_start(const Architecture& target, const std::vector<WarmStartCandidate>& candidates,
                                           double threshold = 0.8, TransferMode mode = TransferMode::kOrdered);

/// Among the library neighbours of `target` (nearest first) that have trained checkpoints
/// (`trained`: hash -> checkpoint dir), the one with the largest overlap >= threshold (as above).
std::optional<WarmStart> choose_warm_start(const Library& library, int64_t target,
                                           const std::map<std::string, std::string>& trained, double threshold = 0.8,
                                           const models::ModelOptions& options = {},
                                           TransferMode mode = TransferMode::kOrdered);

}  // namespace flexnas::transfer
