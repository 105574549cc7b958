#include "transfer/transfer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_map>

#include "design_space/error.h"
#include "models/op_registry.h"

namespace flexnas::transfer {

using models::HeadType;
using models::ModelOptions;

const EnumNames<TransferMode>& transfer_mode_names() {
  static const EnumNames<TransferMode> names{{"od", TransferMode::kOrdered}, {"rp", TransferMode::kRandomProjection}};
  return names;
}

std::string mode_name(TransferMode mode) { return enum_name(transfer_mode_names(), mode); }

TransferMode parse_mode(const std::string& text, const std::string& what) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const auto& [spelling, mode] : transfer_mode_names())
    if (spelling == lower) return mode;
  throw ConfigError("error: " + what + ": unknown transfer mode '" + text + "' (allowed: " +
                    join(enum_spellings(transfer_mode_names())) + ")");
}

std::string fill_name(TensorFill fill) {
  switch (fill) {
    case TensorFill::kCopied: return "copied";
    case TensorFill::kSliced: return "sliced";
    case TensorFill::kProjected: return "projected";
    case TensorFill::kFresh: return "fresh";
  }
  return "fresh";
}

std::vector<int64_t> TensorSpec::shape() const {
  std::vector<int64_t> s;
  for (const Axis& a : axes) s.push_back(a.size);
  return s;
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (const Axis& a : axes) n *= a.size;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Layout from the model dict: models/flex_model.cpp's blocks here, each op's core or head tensors
// from its OpDefinition (core_layout, head_layout).

namespace {

Axis hidden_out(int64_t h) { return {Axis::Kind::kHiddenOut, h}; }
Axis hidden_in(int64_t h) { return {Axis::Kind::kHiddenIn, h}; }
Axis hidden_diag(int64_t h) { return {Axis::Kind::kHiddenDiag, h}; }
Axis ordered(int64_t n) { return {Axis::Kind::kOrdered, n}; }
Axis centered(int64_t n) { return {Axis::Kind::kCentered, n}; }
Axis exact(int64_t n) { return {Axis::Kind::kExact, n}; }
Axis heads_axis(int64_t groups, int64_t heads, int64_t dim, bool centered_dim = false) {
  Axis a{Axis::Kind::kHeads, groups * heads * dim};
  a.groups = groups;
  a.heads = heads;
  a.dim = dim;
  a.centered_dim = centered_dim;
  return a;
}

Axis to_axis(const models::LayoutAxis& a) {
  using K = models::LayoutAxis::Kind;
  if (a.kind == K::kHeads) return heads_axis(a.groups, a.heads, a.dim, a.centered_dim);
  switch (a.kind) {
    case K::kHiddenIn: return hidden_in(a.size);
    case K::kHiddenOut: return hidden_out(a.size);
    case K::kHiddenDiag: return hidden_diag(a.size);
    case K::kCentered: return centered(a.size);
    default: return ordered(a.size);
  }
}

/// The operation type of a layer or head (validate_architecture has checked it is registered).
const models::OpDefinition& op_of(const std::string& type) {
  const models::OpDefinition* def = models::op_registry().find(type);
  FLEXNAS_CHECK(def, "unknown operation type '", type, "'");
  return *def;
}

struct LayoutBuilder {
  std::vector<TensorSpec> specs;
  std::string block, compat;
  void add(const std::string& name, std::vector<Axis> axes) { specs.push_back({name, std::move(axes), compat, block}); }
  /// A Linear in -> out: weight [out, in], bias [out].
  void linear(const std::string& prefix, const Axis& out, const Axis& in, bool bias = true) {
    add(prefix + ".weight", {out, in});
    if (bias) add(prefix + ".bias", {out});
  }
  /// An op's tensors (OpDefinition::core_layout / head_layout) under `prefix`.
  void add_all(const std::string& prefix, const models::ParamLayout& layout) {
    for (const models::LayoutTensor& t : layout.tensors) {
      std::vector<Axis> axes;
      for (const models::LayoutAxis& a : t.axes) axes.push_back(to_axis(a));
      add(prefix + t.name, std::move(axes));
    }
  }
  void layer_norm(const std::string& prefix, int64_t h) {
    add(prefix + ".weight", {hidden_diag(h)});
    add(prefix + ".bias", {hidden_out(h)});
  }
};

}  // namespace

std::vector<TensorSpec> tensor_layout(const Architecture& arch, const ModelOptions& o) {
  models::validate_architecture(arch, o);
  LayoutBuilder b;
  const int64_t h0 = arch.layers.front().hidden, P2 = 2 * o.max_positions - 1;
  b.block = "embeddings";
  b.add("bert.embeddings.word_embeddings.weight", {exact(o.vocab_size), hidden_out(h0)});
  b.add("bert.embeddings.token_type_embeddings.weight", {ordered(o.type_vocab_size), hidden_out(h0)});
  b.layer_norm("bert.embeddings.LayerNorm", h0);
  // One layer's tensors under `p` ("bert.encoder.layer.3."), with its projection to `next_hidden`
  // (0 = none): encoder layers and the Funnel decoder's layers alike.
  auto add_layer = [&](const LayerSpec& L, const std::string& p, int64_t next_hidden) {
    const int64_t h = L.hidden;
    if (L.head_list.empty()) {
      b.compat = L.op;  // attention cores transfer between equal operation types only
      const models::CoreLayout core = op_of(L.op).core_layout(models::core_config(L, o));
      b.add_all(p + "attention.self.", core);
      b.add(p + "attention.output.dense.weight", {hidden_out(h), to_axis(core.output)});
    } else {
      b.compat = "";
      const std::string s = p + "attention.self.";
      const int64_t n = L.num_heads(), D = L.head_list.front().dim;
      const Axis W = heads_axis(1, n, D);
      b.linear(s + "query", W, hidden_in(h));
      b.linear(s + "key", W, hidden_in(h));
      b.linear(s + "value", W, hidden_in(h));
      b.add(s + "distance_embedding.weight", {centered(P2), ordered(D)});
      for (size_t j = 0; j < L.head_list.size(); ++j) {
        const HeadSpec& head = L.head_list[j];
        b.add_all(s + "heads." + std::to_string(j) + ".", op_of(head.type).head_layout(models::head_config(head, o)));
      }
      // Column block j belongs to head j whatever its type (spec §6.3).
      b.add(p + "attention.output.dense.weight", {hidden_out(h), W});
    }
    b.compat = "";
    b.add(p + "attention.output.dense.bias", {hidden_out(h)});
    b.layer_norm(p + "attention.output.LayerNorm", h);
    int64_t in = h;
    for (size_t j = 0; j < L.ffn.size(); ++j) {
      const std::string name = p + "intermediate." + (j == 0 ? std::string("dense") : "dense_" + std::to_string(j));
      b.linear(name, ordered(L.ffn[j]), j == 0 ? hidden_in(h) : ordered(in));
      in = L.ffn[j];
    }
    b.linear(p + "output.dense", hidden_out(h), ordered(in));
    b.layer_norm(p + "output.LayerNorm", h);
    if (next_hidden > 0 && next_hidden != h) b.linear(p + "proj_head", hidden_out(next_hidden), hidden_in(h));
  };
  for (size_t i = 0; i < arch.layers.size(); ++i) {
    b.block = "layer " + std::to_string(i);
    const std::string prefix = "bert.encoder.layer." + std::to_string(i) + ".";
    const int64_t next = i + 1 < arch.layers.size() ? arch.layers[i + 1].hidden : 0;
    if (arch.owner(i) == i) {
      add_layer(arch.layers[i], prefix, next);
    } else if (const int64_t h = arch.layers[i].hidden; next > 0 && next != h) {
      // Block parameter sharing: the layer's tensors are its owner's; only proj_head is its own.
      b.compat = "";
      b.linear(prefix + "proj_head", hidden_out(next), hidden_in(h));
    }
  }
  // Funnel decoder (token-level heads of pooled models, models/flex_model.cpp): the up-projection
  // when the last width differs, then copies of the last full-length layer.
  int64_t hl = arch.layers.back().hidden;
  if (arch.pool.active() && (o.head == HeadType::kMlm || o.head == HeadType::kToken)) {
    const LayerSpec& spec = arch.layers[arch.pool.first_pooling_layer() - 1];
    b.block = "decoder";
    if (hl != spec.hidden) b.linear("bert.decoder.up_proj", hidden_out(spec.hidden), hidden_in(hl));
    for (int64_t d = 0; d < arch.pool.decoder; ++d) {
      b.block = "decoder layer " + std::to_string(d);
      add_layer(spec, "bert.decoder.layer." + std::to_string(d) + ".", 0);
    }
    hl = spec.hidden;
  }
  b.block = "head";
  b.compat = "head:" + models::head_type_name(o.head);
  switch (o.head) {
    case HeadType::kMlm:
      b.linear("cls.predictions.transform.dense", hidden_out(hl), hidden_in(hl));
      b.layer_norm("cls.predictions.transform.LayerNorm", hl);
      b.add("cls.predictions.decoder.weight", {exact(o.vocab_size), hidden_in(hl)});
      b.add("cls.predictions.bias", {exact(o.vocab_size)});
      break;
    case HeadType::kSequence:
      b.linear("bert.pooler.dense", hidden_out(hl), hidden_in(hl));
      b.linear("classifier", exact(o.num_labels), hidden_in(hl));
      break;
    case HeadType::kToken:
      b.linear("classifier", exact(o.num_labels), hidden_in(hl));
      break;
  }
  return std::move(b.specs);
}

// ---------------------------------------------------------------------------------------------
// Plan.

namespace {

bool is_hidden(Axis::Kind k) {
  return k == Axis::Kind::kHiddenOut || k == Axis::Kind::kHiddenIn || k == Axis::Kind::kHiddenDiag;
}

bool same_axis(const Axis& a, const Axis& b) {
  return a.kind == b.kind && a.size == b.size && a.groups == b.groups && a.heads == b.heads && a.dim == b.dim;
}

/// Pairs (source index, target index) of an ordered or centred overlap of sizes s and t.
std::vector<std::pair<int64_t, int64_t>> overlap_pairs(int64_t s, int64_t t, bool centred) {
  const int64_t m = std::min(s, t);
  const int64_t cs = centred ? (s - m) / 2 : 0, ct = centred ? (t - m) / 2 : 0;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < m; ++i) out.emplace_back(cs + i, ct + i);
  return out;
}

/// Source/target index lists along one axis (after any rp projection of hidden axes).
std::pair<std::vector<int64_t>, std::vector<int64_t>> axis_indices(const Axis& s, const Axis& t, TransferMode mode) {
  std::vector<int64_t> si, ti;
  if (is_hidden(t.kind) && mode == TransferMode::kRandomProjection) {
    for (int64_t i = 0; i < t.size; ++i) si.push_back(i), ti.push_back(i);  // projected to the target width
  } else if (t.kind == Axis::Kind::kHeads) {
    const auto dims = overlap_pairs(s.dim, t.dim, t.centered_dim);
    for (int64_t g = 0; g < t.groups; ++g)
      for (int64_t j = 0; j < std::min(s.heads, t.heads); ++j)
        for (const auto& [ds, dt] : dims) {
          si.push_back((g * s.heads + j) * s.dim + ds);
          ti.push_back((g * t.heads + j) * t.dim + dt);
        }
  } else if (t.kind == Axis::Kind::kExact) {
    if (s.size == t.size)
      for (int64_t i = 0; i < t.size; ++i) si.push_back(i), ti.push_back(i);
  } else {
    for (const auto& [a, b] : overlap_pairs(s.size, t.size, t.kind == Axis::Kind::kCentered)) si.push_back(a), ti.push_back(b);
  }
  return {si, ti};
}

int64_t axis_received(const Axis& s, const Axis& t, TransferMode mode) {
  if (is_hidden(t.kind)) return mode == TransferMode::kRandomProjection ? t.size : std::min(s.size, t.size);
  switch (t.kind) {
    case Axis::Kind::kHeads:
      return t.groups * std::min(s.heads, t.heads) * std::min(s.dim, t.dim);
    case Axis::Kind::kExact:
      return s.size == t.size ? t.size : 0;
    default:
      return std::min(s.size, t.size);
  }
}

/// Whether the source tensor can feed the target one at all.
bool compatible(const TensorSpec& s, const TensorSpec& t) {
  if (s.compat != t.compat || s.axes.size() != t.axes.size()) return false;
  for (size_t a = 0; a < t.axes.size(); ++a) {
    if (s.axes[a].kind != t.axes[a].kind) return false;
    if (t.axes[a].kind == Axis::Kind::kHeads && s.axes[a].groups != t.axes[a].groups) return false;
  }
  return true;
}

TensorTransfer plan_tensor(const TensorSpec* s, const TensorSpec& t, TransferMode mode) {
  TensorTransfer tt{t.name, t.block, TensorFill::kFresh, t.numel(), 0};
  if (!s || !compatible(*s, t)) return tt;
  int64_t received = 1;
  bool equal = true, projected = false;
  for (size_t a = 0; a < t.axes.size(); ++a) {
    received *= axis_received(s->axes[a], t.axes[a], mode);
    equal = equal && same_axis(s->axes[a], t.axes[a]);
    projected = projected || (is_hidden(t.axes[a].kind) && mode == TransferMode::kRandomProjection &&
                              s->axes[a].size != t.axes[a].size);
  }
  tt.received = received;
  if (received == 0) return tt;
  tt.fill = equal ? TensorFill::kCopied : projected ? TensorFill::kProjected : TensorFill::kSliced;
  return tt;
}

/// The source's tensors by name, and under block parameter sharing also by the names a layer would
/// have if it held its own copy: a target layer i reads source layer i's parameters wherever the
/// source keeps them (its owner's), so shared and unshared models transfer layer by layer. proj_head
/// stays per layer (it is never an alias).
std::unordered_map<std::string, const TensorSpec*> source_tensors_by_name(const Architecture& arch,
                                                                        const std::vector<TensorSpec>& layout) {
  std::unordered_map<std::string, const TensorSpec*> by_name;
  for (const auto& s : layout) by_name[s.name] = &s;
  if (!arch.shares()) return by_name;
  for (const auto& s : layout) {
    const std::string kPrefix = "bert.encoder.layer.";
    if (s.name.rfind(kPrefix, 0) != 0) continue;
    const size_t dot = s.name.find('.', kPrefix.size());
    const size_t layer = size_t(std::stoll(s.name.substr(kPrefix.size(), dot - kPrefix.size())));
    const std::string rest = s.name.substr(dot);  // ".attention.self.query.weight"
    if (rest.rfind(".proj_head.", 0) == 0) continue;
    for (size_t i = layer + 1; i < arch.layers.size(); ++i)
      if (arch.owner(i) == layer) by_name.emplace(kPrefix + std::to_string(i) + rest, &s);
  }
  return by_name;
}

void check_same_format(const Architecture& source, const Architecture& target) {
  if (source.format != target.format) {
    auto name = [](const Architecture& a) { return a.is_hetero() ? std::string("hetero") : std::string("standard"); };
    throw ConfigError("error: transfer needs the same model-dict format on both sides: the source is " + name(source) +
                      ", the target is " + name(target));
  }
}

}  // namespace

TransferPlan plan_transfer(const Architecture& source, const Architecture& target, const ModelOptions& source_options,
                           const ModelOptions& target_options, TransferMode mode) {
  check_same_format(source, target);
  const auto src = tensor_layout(source, source_options);
  const auto by_name = source_tensors_by_name(source, src);
  TransferPlan plan;
  for (const TensorSpec& t : tensor_layout(target, target_options)) {
    auto it = by_name.find(t.name);
    plan.tensors.push_back(plan_tensor(it == by_name.end() ? nullptr : it->second, t, mode));
    plan.received += plan.tensors.back().received;
    plan.total += plan.tensors.back().numel;
  }
  return plan;
}

double transfer_overlap(const Architecture& source, const Architecture& target, const ModelOptions& options,
                        TransferMode mode) {
  return plan_transfer(source, target, options, options, mode).overlap();
}

// ---------------------------------------------------------------------------------------------
// Projections.

namespace {

/// Narrowing s -> t (t < s) by random selection, [t, s] float64: target unit j holds source unit
/// k_j, k_0 < ... < k_{t-1} a random t-subset drawn from `gen` (orthonormal rows, one entry 1 per
/// row); per-unit gains are carried exactly, the other s - t units are dropped. The source's units
/// are exchangeable before training, so this is od's "first t units" drawn at random.
torch::Tensor selection(int64_t s, int64_t t, std::mt19937_64& gen) {
  std::vector<int64_t> perm(static_cast<size_t>(s));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::shuffle(perm.begin(), perm.end(), gen);
  std::sort(perm.begin(), perm.begin() + t);
  auto q = torch::zeros({t, s}, torch::kDouble);
  auto acc = q.accessor<double, 2>();
  for (int64_t j = 0; j < t; ++j) acc[j][perm[size_t(j)]] = 1.0;
  return q;
}

/// Widening s -> t (t > s) by random replication, [t, s] float64: target unit j holds source unit
/// g(j) scaled by 1/sqrt(r), r = the number of target units holding that source unit. Units 0..s-1
/// keep their place; unit s+k repeats source unit perm[k mod s] (perm drawn from `gen`), so every
/// source unit is held floor(t/s) or ceil(t/s) times. The columns are orthonormal (disjoint supports)
/// and every row has one entry, so diag(gamma_t) Q = Q diag(gamma_s) with gamma_t(j) = gamma_s(g(j)):
/// per-unit gains (LayerNorm) are carried exactly, which a dense rotation cannot do.
torch::Tensor replication(int64_t s, int64_t t, std::mt19937_64& gen) {
  std::vector<int64_t> perm(static_cast<size_t>(s));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::shuffle(perm.begin(), perm.end(), gen);
  std::vector<int64_t> source_of(static_cast<size_t>(t)), copies(static_cast<size_t>(s), 1);
  std::iota(source_of.begin(), source_of.begin() + s, int64_t{0});
  for (int64_t k = 0; k < t - s; ++k) {
    const int64_t i = perm[size_t(k % s)];
    source_of[size_t(s + k)] = i;
    ++copies[size_t(i)];
  }
  auto q = torch::zeros({t, s}, torch::kDouble);
  auto acc = q.accessor<double, 2>();
  for (int64_t j = 0; j < t; ++j) {
    const int64_t i = source_of[size_t(j)];
    acc[j][i] = 1.0 / std::sqrt(double(copies[size_t(i)]));
  }
  return q;
}

}  // namespace

const torch::Tensor& ProjectionCache::q(int64_t s, int64_t t) {
  auto key = std::make_pair(s, t);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  torch::Tensor q;
  if (s == t) {
    q = torch::eye(s, torch::kDouble);
  } else {
    // Independent of the order in which tensors ask: the stream depends on (seed, s, t) only.
    std::seed_seq seq{uint32_t(seed_), uint32_t(seed_ >> 32), uint32_t(s), uint32_t(t)};
    std::mt19937_64 gen(seq);
    // Coordinate maps in both directions: a dense rotation mixes units, so trained per-unit
    // LayerNorm gains could only be averaged, and the trained basis is lost; measured on the Brown
    // benchmark, dense rotations trained to the source's loss slower than od when widening (175 vs 50
    // steps) and narrowing (250 vs 225, three draws), replication / selection as fast or faster.
    q = t > s ? replication(s, t, gen) : selection(s, t, gen);
  }
  return cache_.emplace(key, q).first->second;
}

torch::Tensor ProjectionCache::axis_matrix(Axis::Kind kind, int64_t s, int64_t t) {
  const torch::Tensor& m = q(s, t);
  switch (kind) {
    case Axis::Kind::kHiddenOut: return m * alpha(s, t);
    case Axis::Kind::kHiddenIn: return m / alpha(s, t);
    case Axis::Kind::kHiddenDiag: {
      auto w = m * m;
      return w / w.sum(1, true).clamp_min(1e-12);
    }
    default: FLEXNAS_CHECK(false, "axis_matrix: not a hidden axis");
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Execution.

namespace {

std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// Applies m [t, s] along axis `a` of x. A matrix with one non-negative entry per row (rp's
/// replication and selection) is a gather and a per-unit scale: O(numel) instead of a
/// [.., s] x [s, t] product (the [V, s] word embeddings would dominate the transfer).
torch::Tensor apply_along(const torch::Tensor& x, const torch::Tensor& m, int64_t a) {
  if (((m != 0).sum(1) == 1).all().item<bool>() && (m >= 0).all().item<bool>()) {
    auto [scale, from] = m.max(1);  // [t]: the entry and its source unit
    std::vector<int64_t> shape(size_t(x.dim()), 1);
    shape[size_t(a)] = m.size(0);
    return x.index_select(a, from) * scale.view(shape);
  }
  return torch::matmul(x.movedim(a, -1), m.t()).movedim(-1, a);
}

}  // namespace

TransferPlan transfer_weights(const Architecture& source_arch, const ModelOptions& source_options,
                              const std::map<std::string, torch::Tensor>& source_tensors, models::FlexModelImpl& target,
                              const TransferOptions& options, ProjectionCache* projections,
                              const std::string& source_where) {
  check_same_format(source_arch, target.architecture());
  const auto src_layout = tensor_layout(source_arch, source_options);
  const auto src_by_name = source_tensors_by_name(source_arch, src_layout);
  for (const auto& s : src_layout) {
    auto it = source_tensors.find(s.name);
    if (it == source_tensors.end())
      throw ConfigError(source_where + ": error: tensor '" + s.name + "': missing (the source architecture has it)");
    if (it->second.sizes().vec() != s.shape())
      throw ConfigError(source_where + ": error: tensor '" + s.name + "': shape " + shape_text(it->second.sizes()) +
                        " in the source, its architecture implies " + shape_text(s.shape()));
  }
  ProjectionCache local(options.seed);
  ProjectionCache& proj = projections ? *projections : local;
  std::unordered_map<std::string, torch::Tensor> params;
  for (const auto& item : target.named_parameters()) params[item.key()] = item.value();

  torch::NoGradGuard no_grad;
  TransferPlan plan;
  for (const TensorSpec& t : tensor_layout(target.architecture(), target.options())) {
    auto sit = src_by_name.find(t.name);
    const TensorSpec* s = sit == src_by_name.end() ? nullptr : sit->second;
    TensorTransfer tt = plan_tensor(s, t, options.mode);
    plan.received += tt.received;
    plan.total += tt.numel;
    plan.tensors.push_back(tt);
    auto pit = params.find(t.name);
    FLEXNAS_CHECK(pit != params.end() && pit->second.sizes().vec() == t.shape(),
                  "tensor_layout disagrees with the model at ", t.name);
    if (tt.received == 0) continue;
    torch::Tensor& dst = pit->second;
    const torch::Tensor& from = source_tensors.at(s->name);  // under sharing, the owner's tensor
    if (tt.fill == TensorFill::kCopied) {  // same shape and axes: a plain copy (rp: R = I)
      dst.copy_(from);
      continue;
    }
    // Projections run in the source's precision (the matrices are drawn in float64).
    torch::Tensor x = from.to(dst.device());
    if (options.mode == TransferMode::kRandomProjection)
      for (size_t a = 0; a < t.axes.size(); ++a)
        if (is_hidden(t.axes[a].kind) && s->axes[a].size != t.axes[a].size)
          x = apply_along(x, proj.axis_matrix(t.axes[a].kind, s->axes[a].size, t.axes[a].size).to(x.device(), x.scalar_type()),
                          int64_t(a));
    c10::List<c10::optional<torch::Tensor>> index;
    const int64_t rank = int64_t(t.axes.size());
    bool whole = true;  // every target index received, in order: a plain copy (rp: most tensors)
    for (int64_t a = 0; a < rank; ++a) {
      auto [si, ti] = axis_indices(s->axes[size_t(a)], t.axes[size_t(a)], options.mode);
      bool identity_s = int64_t(si.size()) == x.size(a);
      for (size_t i = 0; identity_s && i < si.size(); ++i) identity_s = si[i] == int64_t(i);
      if (!identity_s) x = x.index_select(a, torch::tensor(si, torch::kLong).to(x.device()));
      bool identity_t = int64_t(ti.size()) == t.axes[size_t(a)].size;
      for (size_t i = 0; identity_t && i < ti.size(); ++i) identity_t = ti[i] == int64_t(i);
      whole = whole && identity_t;
      std::vector<int64_t> view(size_t(rank), 1);
      view[size_t(a)] = int64_t(ti.size());
      index.push_back(torch::tensor(ti, torch::kLong).view(view).to(dst.device()));
    }
    if (whole)
      dst.copy_(x);
    else
      dst.index_put_(index, x.to(dst.scalar_type()));
  }
  return plan;
}

TransferPlan transfer_model(models::FlexModelImpl& source, models::FlexModelImpl& target, const TransferOptions& options,
                            ProjectionCache* projections) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : source.named_parameters()) tensors[item.key()] = item.value().detach();
  return transfer_weights(source.architecture(), source.options(), tensors, target, options, projections, "source model");
}

std::vector<BlockSummary> summarize_blocks(const TransferPlan& plan) {
  std::vector<BlockSummary> out;
  for (const TensorTransfer& t : plan.tensors) {
    if (out.empty() || out.back().block != t.block) out.push_back({t.block});
    BlockSummary& b = out.back();
    b.total += t.numel;
    b.fresh += t.numel - t.received;
    switch (t.fill) {
      case TensorFill::kCopied: b.copied += t.received; break;
      case TensorFill::kSliced: b.sliced += t.received; break;
      case TensorFill::kProjected: b.projected += t.received; break;
      case TensorFill::kFresh: break;
    }
  }
  return out;
}

std::optional<WarmStart> choose_warm_start(const Architecture& target, const std::vector<WarmStartCandidate>& candidates,
                                           double threshold, TransferMode mode) {
  std::optional<WarmStart> best;
  for (const WarmStartCandidate& c : candidates) {  // nearest first
    FLEXNAS_CHECK(c.arch != nullptr, "choose_warm_start: candidate ", c.hash, " has no architecture");
    if (c.arch->format != target.format) continue;
    const double overlap = transfer_overlap(*c.arch, target, c.options, mode);
    // Strictly larger only: on ties the nearer candidate (seen first) stays (defect 25).
    if (overlap >= threshold && (!best || overlap > best->overlap)) best = WarmStart{c.index, c.hash, c.checkpoint, overlap};
  }
  return best;
}

std::optional<WarmStart> choose_warm_start(const Library& library, int64_t target,
                                           const std::map<std::string, std::string>& trained, double threshold,
                                           const ModelOptions& options, TransferMode mode) {
  FLEXNAS_CHECK(target >= 0 && size_t(target) < library.size(), "choose_warm_start: target index out of range");
  std::vector<WarmStartCandidate> candidates;
  if (size_t(target) < library.neighbors.size()) {
    for (const std::string& hash : library.neighbors[size_t(target)]) {  // nearest first
      auto ckpt = trained.find(hash);
      if (ckpt == trained.end()) continue;
      const int64_t idx = library.find(hash);
      if (idx < 0 || idx == target) continue;
      candidates.push_back({hash, &library.archs[size_t(idx)], ckpt->second, options, idx});
    }
  }
  return choose_warm_start(library.archs[size_t(target)], candidates, threshold, mode);
}

}  // namespace flexnas::transfer
