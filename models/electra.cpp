#include "models/electra.h"

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "design_space/error.h"

namespace flexnas::models {

namespace {

int64_t scaled(int64_t v, double size) { return std::max<int64_t>(1, std::llround(double(v) * size)); }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The generator's own embedding block and head exist (a FlexModel always has them) but are never
// used: it reads the discriminator's embeddings and has its own tied output layer.
bool unused_generator_tensor(const std::string& name) {
  return name.rfind("bert.embeddings.", 0) == 0 || name.rfind("classifier.", 0) == 0 ||
         name.rfind("bert.pooler.", 0) == 0 || name.rfind("cls.", 0) == 0;
}

/// The generator FlexModel's options: the discriminator's, with the smallest head a FlexModel can
/// have (unused and frozen: the generator's output layer is ElectraModelImpl's, tied to the embeddings).
ModelOptions generator_options(const ModelOptions& discriminator) {
  ModelOptions o = discriminator;
  o.head = HeadType::kToken;
  o.num_labels = 2;
  return o;
}

void init_linear(torch::nn::Linear& l, double range) {
  l->weight.normal_(0.0, range);
  if (l->bias.defined()) l->bias.zero_();
}

std::string shape_text(const torch::IntArrayRef& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// Copies the named tensors of a safetensors file into `wanted` (every one required, nothing else
/// in the file).
void load_named(const NamedTensors& wanted, const std::string& path) {
  auto tensors = read_safetensors(path);
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : wanted) {
    auto it = tensors.find(name);
    if (it == tensors.end())
      throw_config_error(Location{path, 0, 0, "tensor '" + name + "'"},
                         "missing from the file (the model needs shape " + shape_text(t.sizes()) + ")");
    if (it->second.sizes() != t.sizes())
      throw_config_error(Location{path, 0, 0, "tensor '" + name + "'"},
                         "shape " + shape_text(it->second.sizes()) + " in the file, the model expects " +
                             shape_text(t.sizes()) + " (another architecture or --generator-size?)");
    t.copy_(it->second);
    tensors.erase(it);
  }
  if (!tensors.empty())
    throw_config_error(Location{path, 0, 0, "tensor '" + tensors.begin()->first + "'"},
                       "in the file but not in the model (another architecture or --generator-size?)");
}

}  // namespace

Architecture generator_architecture(const Architecture& d, double size) {
  FLEXNAS_CHECK(size > 0 && size <= 1, "generator_architecture: size must be in (0, 1]");
  Architecture g = d;  // same depth, operations and format (and any other model-dict setting)
  for (LayerSpec& layer : g.layers) {
    if (layer.head_list.empty()) {
      layer.heads = scaled(layer.heads, size);
      // The multiple of the head count nearest to h x size, at least one per head.
      const int64_t per_head = std::max<int64_t>(1, std::llround(double(layer.hidden) * size / double(layer.heads)));
      layer.hidden = per_head * layer.heads;
    } else {
      layer.head_list.resize(size_t(scaled(int64_t(layer.head_list.size()), size)));
      layer.hidden = scaled(layer.hidden, size);
    }
    for (int64_t& f : layer.ffn) f = scaled(f, size);
  }
  return g;
}

Architecture checked_generator_architecture(const Architecture& discriminator, const ModelOptions& options, double size) {
  const Architecture g = generator_architecture(discriminator, size);
  try {
    validate_architecture(g, generator_options(options));
  } catch (const ConfigError& e) {
    std::ostringstream text;
    text << size;
    throw ConfigError("error: --generator-size: the generator derived at size " + text.str() + " (" +
                      g.to_canonical_string() + ") is not a valid architecture: " + e.what());
  }
  return g;
}

ElectraModelImpl::ElectraModelImpl(FlexModel discriminator, const ElectraOptions& o)
    : options_(o), discriminator_(std::move(discriminator)) {
  const Architecture& darch = discriminator_->architecture();
  const ModelOptions& dopt = discriminator_->options();
  register_module("discriminator", discriminator_);

  const Architecture garch = checked_generator_architecture(darch, dopt, o.generator_size);
  generator_ = register_module("generator", FlexModel(garch, generator_options(dopt)));
  for (auto& item : generator_->named_parameters())
    if (unused_generator_tensor(item.key())) item.value().set_requires_grad(false);

  const int64_t h0 = darch.layers.front().hidden, g0 = garch.layers.front().hidden;
  // What encode() returns: the decoder's width for Funnel-pooled models (token-level heads).
  const int64_t hl = discriminator_->output_width(), gl = generator_->output_width();
  const double eps = dopt.layer_norm_eps, r = dopt.initializer_range;
  if (g0 != h0) project_ = register_module("embeddings_project", torch::nn::Linear(h0, g0));
  auto gen_pred = register_module("generator_predictions", std::make_shared<torch::nn::Module>());
  gen_dense_ = gen_pred->register_module("dense", torch::nn::Linear(gl, h0));
  gen_norm_ = gen_pred->register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h0}).eps(eps)));
  gen_bias_ = gen_pred->register_parameter("bias", torch::zeros({dopt.vocab_size}));
  auto disc_pred = register_module("discriminator_predictions", std::make_shared<torch::nn::Module>());
  disc_dense_ = disc_pred->register_module("dense", torch::nn::Linear(hl, hl));
  disc_out_ = disc_pred->register_module("dense_prediction", torch::nn::Linear(hl, 1));

  torch::NoGradGuard no_grad;  // FlexModel's initialisation (spec §5.8) for the new parts
  if (project_) init_linear(project_, r);
  init_linear(gen_dense_, r);
  init_linear(disc_dense_, r);
  init_linear(disc_out_, r);
}

torch::Tensor ElectraModelImpl::shared_word_embeddings() const {
  return discriminator_->named_parameters()["bert.embeddings.word_embeddings.weight"];
}

torch::Tensor ElectraModelImpl::generator_logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                 const torch::Tensor& picked) {
  auto x = discriminator_->embed(input_ids);  // [B,T,h_0], the shared embedding block
  if (project_) x = project_(x).to(torch::kFloat);
  auto hidden = generator_->encode_embeddings(x, attention_mask);  // [B,T,g_last]
  hidden = hidden.reshape({-1, hidden.size(-1)}).index_select(0, picked);
  auto y = gen_norm_(torch::gelu(gen_dense_(hidden)).to(torch::kFloat));  // [N,h_0], LayerNorm in fp32
  return torch::linear(y, shared_word_embeddings()).to(torch::kFloat) + gen_bias_;  // tied output layer
}

torch::Tensor ElectraModelImpl::discriminator_logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  auto hidden = discriminator_->encode(input_ids, attention_mask);
  return disc_out_(torch::gelu(disc_dense_(hidden))).squeeze(-1).to(torch::kFloat);
}

torch::Tensor ElectraModelImpl::sample(const torch::Tensor& logits, const torch::Tensor& uniforms) {
  torch::NoGradGuard no_grad;
  const int64_t V = logits.size(-1);
  const auto cdf = torch::softmax(logits.detach().to(torch::kFloat), -1).cumsum(-1);  // [N,V]
  // The first id whose cumulative probability exceeds u x total (right = true skips ids of
  // probability 0 at u = 0); the clamp guards rounding at the top.
  const auto u = (uniforms.to(cdf.device(), torch::kFloat) * cdf.select(1, V - 1)).unsqueeze(1);
  return torch::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true).squeeze(1).clamp_max(V - 1);
}

ElectraStats ElectraModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                       const torch::Tensor& labels, const torch::Tensor& uniforms) {
  ElectraStats s;
  const auto flat_labels = labels.reshape({-1});
  const auto picked = (flat_labels != -100).nonzero().squeeze(1);
  const auto original = torch::where(labels != -100, labels, input_ids);  // [B,T]
  auto corrupted = original;
  torch::Tensor gen_loss;
  if (picked.numel() > 0) {
    const auto logits = generator_logits(input_ids, attention_mask, picked);
    gen_loss = torch::cross_entropy_loss(logits, flat_labels.index_select(0, picked));
    const auto u = uniforms.reshape({-1}).index_select(0, picked.to(uniforms.device()));
    const auto sampled = sample(logits, u).to(original.device());
    corrupted = original.reshape({-1}).index_put({picked}, sampled).reshape(original.sizes());
  } else {
    gen_loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(input_ids.device()));
  }
  const auto disc = discriminator_logits(corrupted, attention_mask).reshape({-1});  // [B*T]
  const auto valid = (attention_mask.reshape({-1}) != 0).nonzero().squeeze(1);
  const auto judged = disc.index_select(0, valid);
  const auto target = (corrupted != original).reshape({-1}).index_select(0, valid);
  const auto disc_loss = torch::binary_cross_entropy_with_logits(judged, target.to(torch::kFloat));
  s.loss = gen_loss + options_.discriminator_weight * disc_loss;
  s.generator_loss = gen_loss.item<double>();
  s.discriminator_loss = disc_loss.item<double>();
  s.masked = picked.numel();
  s.tokens = valid.numel();
  s.replaced = target.sum().item<int64_t>();
  s.correct = ((judged > 0) == target).sum().item<int64_t>();
  s.generator_term = gen_loss;
  s.discriminator_term = disc_loss;
  return s;
}

NamedTensors ElectraModelImpl::discriminator_head_tensors() const {
  NamedTensors out;
  for (const auto& item : named_parameters())
    if (item.key().rfind("discriminator_predictions.", 0) == 0) out.emplace_back(item.key(), item.value());
  return out;
}

NamedTensors ElectraModelImpl::generator_tensors() const {
  NamedTensors out;
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    if (name.rfind("generator.", 0) == 0 && unused_generator_tensor(name.substr(10))) continue;
    if (name.rfind("generator.", 0) == 0 || name.rfind("generator_predictions.", 0) == 0 ||
        name.rfind("embeddings_project.", 0) == 0)
      out.emplace_back(name, item.value());
  }
  return out;
}

void ElectraModelImpl::load_discriminator_head(const std::string& path) { load_named(discriminator_head_tensors(), path); }
void ElectraModelImpl::load_generator(const std::string& path) { load_named(generator_tensors(), path); }

torch::Tensor sampling_uniforms(uint64_t seed, uint64_t stream, int64_t index, int64_t batch, int64_t seq_len) {
  const uint64_t s = splitmix64(seed ^ splitmix64(splitmix64(stream + 0x5eed) + uint64_t(index)));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(s);
  return torch::rand({batch, seq_len}, gen, torch::kFloat);
}

ElectraStats electra_accumulate_gradients(ElectraModelImpl& model, const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask, const torch::Tensor& labels,
                                          const torch::Tensor& uniforms, int64_t micro, Precision precision,
                                          double loss_scale) {
  const torch::Device device = model.parameters().front().device();
  const int64_t B = input_ids.size(0);
  micro = std::clamp<int64_t>(micro, 1, B);
  ElectraStats total;
  if (micro == 1) {
    {
      AutocastScope autocast(precision, device);
      total = model.forward(input_ids.to(device), attention_mask.to(device), labels.to(device), uniforms);
    }
    (loss_scale == 1.0 ? total.loss : total.loss * loss_scale).backward();
    total.loss = total.generator_term = total.discriminator_term = torch::Tensor();
    return total;
  }
  // Each part's share: of the masked positions (generator) and of the tokens (discriminator).
  const double all_masked = std::max<double>(1.0, (labels != -100).sum().item<double>());
  const double all_tokens = std::max<double>(1.0, (attention_mask != 0).sum().item<double>());
  const double w = model.options().discriminator_weight;
  const int64_t size = (B + micro - 1) / micro;
  for (int64_t start = 0; start < B; start += size) {
    const int64_t n = std::min(size, B - start);
    const auto part_mask = attention_mask.narrow(0, start, n);
    if ((part_mask != 0).sum().item<int64_t>() == 0) continue;
    ElectraStats s;
    {
      AutocastScope autocast(precision, device);
      s = model.forward(input_ids.narrow(0, start, n).to(device), part_mask.to(device),
                        labels.narrow(0, start, n).to(device), uniforms.narrow(0, start, n));
    }
    const double wg = double(s.masked) / all_masked, wd = double(s.tokens) / all_tokens;
    (s.generator_term * (wg * loss_scale) + s.discriminator_term * (w * wd * loss_scale)).backward();
    total.generator_loss += s.generator_loss * wg;
    total.discriminator_loss += s.discriminator_loss * wd;
    total.masked += s.masked;
    total.tokens += s.tokens;
    total.replaced += s.replaced;
    total.correct += s.correct;
  }
  return total;
}

}  // namespace flexnas::models
