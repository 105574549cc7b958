#include "models/probe.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <random>

#include "design_space/error.h"
#include "design_space/progress.h"
#include "models/pooling.h"

namespace flexnas::models {

const EnumNames<ProbePooling>& probe_pooling_names() {
  static const EnumNames<ProbePooling> names{{"mean", ProbePooling::kMean}, {"cls", ProbePooling::kCls}};
  return names;
}

std::string probe_pooling_name(ProbePooling pooling) { return enum_name(probe_pooling_names(), pooling); }

ProbePooling parse_probe_pooling(const std::string& text, const std::string& flag) {
  for (const auto& [name, pooling] : probe_pooling_names())
    if (text == name) return pooling;
  std::string allowed;
  for (const auto& entry : probe_pooling_names()) allowed += (allowed.empty() ? "" : ", ") + entry.first;
  throw ConfigError("error: " + flag + ": '" + text + "' is not a pooling; allowed: " + allowed);
}

LayerFeatures extract_features(FlexModelImpl& model, const EvalSplit& split, datasets::TaskKind kind,
                               const std::vector<int64_t>& layers, ProbePooling pooling, Precision precision) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model.parameters().front().device();
  const bool token_task = kind == datasets::TaskKind::kTokenClassification;
  LayerFeatures out;
  out.layers = layers;
  std::vector<std::vector<torch::Tensor>> parts(layers.size());
  std::vector<torch::Tensor> labels, example;
  Progress progress("features of " + split.name, uint64_t(split.num_batches), "batches");
  for (int64_t i = 0; i < split.num_batches; ++i) {
    const datasets::TaskBatch b = split.batch(i);
    const auto ids = b.input_ids.to(device), mask = b.attention_mask.to(device);
    out.tokens += b.attention_mask.sum().item<int64_t>();
    const auto batch_examples = torch::tensor(b.example_ids, torch::kLong);  // [B]
    out.num_examples += int64_t(b.example_ids.size());
    std::vector<torch::Tensor> hidden;
    {
      AutocastScope autocast(precision, device);
      hidden = model.encode_layers(ids, mask, layers.back());  // [B,T,h_i] for i = 0..layers.back()
    }
    torch::Tensor keep;  // token tasks: flat positions whose label is scored [M]
    if (token_task) {
      const auto flat = b.labels.reshape({-1});
      keep = (flat != -100).nonzero().squeeze(1);
      labels.push_back(flat.index_select(0, keep));
      example.push_back(batch_examples.index_select(0, torch::div(keep, b.labels.size(1), "floor")));
    } else {
      labels.push_back(b.labels);
      example.push_back(batch_examples);
    }
    // Validity of each output's tokens: Funnel-pooled layers hold fewer tokens, pooled as the model
    // pools them (token tasks never reach them: cmd_probe refuses those layers).
    std::vector<torch::Tensor> layer_mask{mask.to(torch::kFloat)};  // [B,T_i] for i = 0..layers.back()
    const PoolSpec& pool = model.architecture().pool;
    for (int64_t l = 1; l <= layers.back(); ++l) {
      const torch::Tensor& m = layer_mask.back();
      const int64_t stride = pool.active() ? pool.stride[size_t(l - 1)] : 1;
      layer_mask.push_back(stride == 1 ? m : pool_tokens(m.unsqueeze(-1), m, stride, pool.separate_cls).valid);
    }
    for (size_t j = 0; j < layers.size(); ++j) {
      const auto h = hidden[size_t(layers[j])].to(torch::kFloat);  // [B,T_i,h]
      torch::Tensor items;                                           // [B or M, h]
      if (token_task) {
        items = h.reshape({-1, h.size(-1)}).index_select(0, keep.to(device));
      } else if (pooling == ProbePooling::kCls) {
        items = h.select(1, 0);
      } else {
        const auto mask_f = layer_mask[size_t(layers[j])].unsqueeze(-1);  // [B,T_i,1]
        items = (h * mask_f).sum(1) / mask_f.sum(1).clamp_min(1);
      }
      parts[j].push_back(items.to(torch::kCPU, torch::kBFloat16));
    }
    progress.advance();
  }
  progress.finish();
  if (was_training) model.train();
  for (auto& p : parts) out.features.push_back(p.empty() ? torch::Tensor() : torch::cat(p));
  out.labels = labels.empty() ? torch::Tensor() : torch::cat(labels);
  out.example = example.empty() ? torch::Tensor() : torch::cat(example);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

namespace {

constexpr int64_t kChunk = 1 << 16;  // rows per block when predicting (bounds the logits' memory)

/// Items whose example is in `chosen` (a sorted list of example ids).
torch::Tensor items_of(const torch::Tensor& example, const std::vector<int64_t>& chosen) {
  const auto ids = torch::tensor(chosen, torch::kLong);
  return torch::isin(example, ids).nonzero().squeeze(1);
}

}  // namespace

torch::Tensor Probe::predict(const torch::Tensor& features) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (int64_t s = 0; s < features.size(0); s += kChunk) {
    const auto x = (features.slice(0, s, s + kChunk).to(torch::kFloat) - mean) * inv_std;  // [n,h]
    const auto y = torch::addmm(bias, x, weight);                                           // [n,K]
    out.push_back(weight.size(1) == 1 ? (y.squeeze(1) * target_std + target_mean) : y.argmax(1));
  }
  if (out.empty()) return weight.size(1) == 1 ? torch::empty({0}) : torch::empty({0}, torch::kLong);
  return torch::cat(out);
}

datasets::Predictions probe_predictions(const Probe& probe, const torch::Tensor& features, const torch::Tensor& labels) {
  datasets::Predictions p;
  const auto pred = probe.predict(features).contiguous();
  if (probe.weight.size(1) == 1) {
    const auto v = pred.to(torch::kDouble).contiguous(), g = labels.to(torch::kDouble).contiguous();
    p.predicted_values.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
    p.gold_values.assign(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  } else {
    const auto g = labels.to(torch::kLong).contiguous();
    p.predicted.assign(pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
    p.gold.assign(g.data_ptr<int64_t>(), g.data_ptr<int64_t>() + g.numel());
  }
  return p;
}

Probe train_probe(const torch::Tensor& features, const torch::Tensor& labels, const torch::Tensor& example,
                  int64_t num_labels, const std::function<double(const datasets::Predictions&)>& score,
                  const ProbeOptions& options) {
  if (features.size(0) == 0) throw std::invalid_argument("train_probe: no training items");
  const bool regression = num_labels == 1;
  // Hold out a tenth of the training examples (all items of an example together) to pick the penalty.
  auto unique = std::get<0>(torch::_unique(example, /*sorted=*/true)).contiguous();
  std::vector<int64_t> examples(unique.data_ptr<int64_t>(), unique.data_ptr<int64_t>() + unique.numel());
  std::mt19937_64 rng(options.seed);
  std::shuffle(examples.begin(), examples.end(), rng);
  int64_t held = std::llround(options.held_out_fraction * double(examples.size()));
  held = std::clamp<int64_t>(held, examples.size() > 1 ? 1 : 0, int64_t(examples.size()) - 1);
  std::vector<int64_t> held_examples(examples.begin(), examples.begin() + held);
  std::sort(held_examples.begin(), held_examples.end());
  torch::Tensor fit_items, held_items;
  if (held > 0) {
    held_items = items_of(example, held_examples);
    auto is_held = torch::zeros({features.size(0)}, torch::kBool);
    is_held.index_fill_(0, held_items, true);
    fit_items = (~is_held).nonzero().squeeze(1);
  } else {
    fit_items = torch::arange(features.size(0));
  }

  Probe probe;
  const auto x_fit_raw = features.index_select(0, fit_items).to(torch::kFloat);  // [n,h]
  probe.mean = x_fit_raw.mean(0);
  probe.inv_std = 1.0 / (x_fit_raw.std(0, /*unbiased=*/false) + 1e-6);
  const auto x_fit = (x_fit_raw - probe.mean) * probe.inv_std;
  auto y_fit = labels.index_select(0, fit_items);
  if (regression) {
    y_fit = y_fit.to(torch::kFloat);
    probe.target_mean = y_fit.mean().item<double>();
    probe.target_std = std::max(1e-6, y_fit.std(/*unbiased=*/false).item<double>());
    y_fit = (y_fit - probe.target_mean) / probe.target_std;
  }
  const int64_t h = features.size(1), K = regression ? 1 : num_labels;
  auto weight = torch::zeros({h, K}, torch::requires_grad());
  auto bias = torch::zeros({K}, torch::requires_grad());

  // Penalties from large to small, each warm-started from the previous solution; the best on the
  // held-out examples wins (the first when nothing is held out).
  double best_score = -std::numeric_limits<double>::infinity();
  for (double l2 : options.l2_grid) {
    torch::optim::LBFGS lbfgs({weight, bias}, torch::optim::LBFGSOptions(1.0)
                                                  .max_iter(options.max_iterations)
                                                  .history_size(10)
                                                  .tolerance_grad(1e-6)
                                                  .tolerance_change(1e-9)
                                                  .line_search_fn("strong_wolfe"));
    int64_t evaluations = 0;
    auto closure = [&]() -> torch::Tensor {
      ++evaluations;
      lbfgs.zero_grad();
      const auto out = torch::addmm(bias, x_fit, weight);  // [n,K]
      auto loss = regression ? torch::mse_loss(out.squeeze(1), y_fit) : torch::cross_entropy_loss(out, y_fit);
      loss = loss + 0.5 * l2 * weight.pow(2).sum();
      loss.backward();
      return loss;
    };
    lbfgs.step(closure);
    Probe candidate = probe;
    candidate.weight = weight.detach().clone();
    candidate.bias = bias.detach().clone();
    candidate.l2 = l2;
    candidate.evaluations = evaluations;
    const double s = held > 0 ? score(probe_predictions(candidate, features.index_select(0, held_items),
                                                          labels.index_select(0, held_items)))
                              : 0.0;
    candidate.held_out_score = s;
    if (s > best_score) {
      best_score = s;
      probe = candidate;
    }
  }
  return probe;
}

namespace {

/// Items grouped by example: the item indices of example group g are order[start[g] .. start[g+1]).
struct Groups {
  std::vector<int64_t> order, start;
};
Groups group_by_example(const torch::Tensor& example) {
  const auto sorted = example.contiguous();
  const int64_t n = sorted.numel();
  const int64_t* e = sorted.data_ptr<int64_t>();
  Groups g;
  g.order.resize(size_t(n));
  std::iota(g.order.begin(), g.order.end(), 0);
  std::stable_sort(g.order.begin(), g.order.end(), [&](int64_t a, int64_t b) { return e[a] < e[b]; });
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || e[g.order[size_t(i)]] != e[g.order[size_t(i - 1)]]) g.start.push_back(i);
  g.start.push_back(n);
  return g;
}

/// The items of one resample into `r` (its buffers reused across resamples: a bootstrap of 120k
/// tokens otherwise spends its time growing vectors): examples drawn with replacement, each with
/// all its items.
const datasets::Predictions& resample(const datasets::Predictions& p, const Groups& g, const std::vector<int64_t>& drawn,
                                      datasets::Predictions& r) {
  r.predicted.clear(), r.gold.clear(), r.predicted_values.clear(), r.gold_values.clear();
  const bool values = !p.predicted_values.empty();
  const size_t n = values ? p.predicted_values.size() : p.predicted.size();
  if (values) r.predicted_values.reserve(n + n / 4), r.gold_values.reserve(n + n / 4);
  else r.predicted.reserve(n + n / 4), r.gold.reserve(n + n / 4);
  for (int64_t group : drawn)
    for (int64_t k = g.start[size_t(group)]; k < g.start[size_t(group) + 1]; ++k) {
      const size_t item = size_t(g.order[size_t(k)]);
      if (values) {
        r.predicted_values.push_back(p.predicted_values[item]);
        r.gold_values.push_back(p.gold_values[item]);
      } else {
        r.predicted.push_back(p.predicted[item]);
        r.gold.push_back(p.gold[item]);
      }
    }
  return r;
}

Interval percentile_interval(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  auto at = [&](double q) { return values[size_t(std::llround(q * double(values.size() - 1)))]; };
  return {at(0.025), at(0.975)};
}

template <typename Statistic>
Interval bootstrap(const torch::Tensor& example, int64_t resamples, uint64_t seed, Statistic statistic) {
  const Groups g = group_by_example(example);
  const int64_t groups = int64_t(g.start.size()) - 1;
  if (groups <= 0) return {};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, groups - 1);
  std::vector<double> stats;
  std::vector<int64_t> drawn(static_cast<size_t>(groups));
  for (int64_t r = 0; r < resamples; ++r) {
    for (auto& d : drawn) d = pick(rng);
    stats.push_back(statistic(g, drawn));
  }
  return percentile_interval(std::move(stats));
}

}  // namespace

Interval bootstrap_interval(const datasets::Predictions& p, const torch::Tensor& example,
                            const std::function<double(const datasets::Predictions&)>& score, int64_t resamples,
                            uint64_t seed) {
  datasets::Predictions buffer;
  return bootstrap(example, resamples, seed, [&](const Groups& g, const std::vector<int64_t>& drawn) {
    return score(resample(p, g, drawn, buffer));
  });
}

Interval bootstrap_difference(const datasets::Predictions& a, const datasets::Predictions& b,
                              const torch::Tensor& example,
                              const std::function<double(const datasets::Predictions&)>& score, int64_t resamples,
                              uint64_t seed) {
  datasets::Predictions buffer;
  return bootstrap(example, resamples, seed, [&](const Groups& g, const std::vector<int64_t>& drawn) {
    const double score_a = score(resample(a, g, drawn, buffer));
    return score_a - score(resample(b, g, drawn, buffer));
  });
}

std::string layer_op_label(const Architecture& arch, int64_t encode_index) {
  if (encode_index == 0) return "embeddings";
  const LayerSpec& layer = arch.layers.at(size_t(encode_index - 1));
  if (layer.head_list.empty()) return layer.param.empty() ? layer.op : layer.op + "_" + layer.param;
  std::vector<std::string> kinds;
  for (const HeadSpec& head : layer.head_list) {
    const std::string kind = head.param.empty() ? head.type : head.type + "_" + head.param;
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  std::string label;
  for (const auto& k : kinds) label += (label.empty() ? "" : "+") + k;
  return label;
}

}  // namespace flexnas::models
