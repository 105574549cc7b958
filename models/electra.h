#pragma once
// ELECTRA replaced-token detection (Clark et al., ICLR 2020) for `flexnas pretrain --objective electra`.
//
// A small generator (an MLM model) fills the masked positions of a batch with tokens sampled from
// its softmax; the discriminator (the user's architecture, a FlexModel) tells every non-padding token
// of the result whether it is the original one or a replacement:
//   loss = generator MLM loss + discriminator_weight x discriminator BCE loss.
// The masking is MLM's own (datasets::MlmData: 15% of the non-special positions, 80/10/10); the
// generator reads the masked ids, the discriminator the original ids with every selected position
// replaced by the generator's sample (a sample equal to the original counts as original, label 0).
//
// The generator is derived from the discriminator's model dict (generator_architecture). As in
// ELECTRA, the embedding block (word and token-type embeddings, their LayerNorm) is the
// discriminator's, shared: the generator reads the discriminator's embeddings of the masked ids,
// through a learned projection (`embeddings_project`, ELECTRA-Small's) when its first width differs,
// and its output layer is tied to the same word-embedding matrix (ElectraGeneratorPredictions:
// dense -> GELU -> LayerNorm to the embedding width, then logits = x . E^T + bias). The
// discriminator's head is Hugging Face's ElectraDiscriminatorPredictions: Linear(h,h) -> GELU ->
// Linear(h,1), one logit per token.
//
// Sampling takes no gradient and draws its uniforms from a generator seeded by (seed, step), so a
// step's replacements are a pure function of the run's seed and the step: a resumed run replays them
// exactly, and splitting a batch into micro-batches (--accumulate) does not change them.
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "models/flex_model.h"
#include "models/precision.h"
#include "models/safetensors.h"

namespace flexnas::models {

/// `pretrain --objective electra` settings; these initialisers are the only defaults (the CLI binds
/// to them).
struct ElectraOptions {
  double generator_size = 0.25;        // generator width / heads / FFN = the discriminator's x this, in (0, 1]
                                       // (ELECTRA: 1/4 to 1/2 of the discriminator works best)
  double discriminator_weight = 50.0;  // lambda of the discriminator's BCE loss (ELECTRA's 50: the BCE is
                                       // ~1/50 of the MLM loss, whose vocabulary-wide softmax it balances)
  bool keep_generator = false;         // store the generator and the optimiser state in every checkpoint
                                       // (needed to resume); off = "core-only", as the Funnel/ELECTRA releases
};

/// The objective names of `--objective`.
inline constexpr const char* kObjectiveMlm = "mlm";
inline constexpr const char* kObjectiveElectra = "electra";

/// Files an ELECTRA checkpoint adds to config.json / model.safetensors (the discriminator):
inline constexpr const char* kDiscriminatorHeadFile = "discriminator_head.safetensors";  // always
inline constexpr const char* kGeneratorFile = "generator.safetensors";  // with keep_generator

/// The generator's model dict: same depth and operations; for every layer
///   heads  n_g = max(1, round(n x size));
///   width  standard format: the multiple of n_g nearest to h x size (at least n_g), so the heads
///          divide it and each head keeps about the discriminator's head size (as ELECTRA scales
///          heads and width together); hetero format: max(1, round(h x size)), keeping the first
///          n_g heads of the layer's list with their own dimensions;
///   FFN    every width max(1, round(f x size)).
/// Rounding is std::llround (halves away from zero). size must be in (0, 1].
Architecture generator_architecture(const Architecture& discriminator, double size);

/// generator_architecture, checked against the registry with `options` (the discriminator's); a
/// derived model dict the operations reject is a ConfigError naming --generator-size, the size and
/// the generator's model dict.
Architecture checked_generator_architecture(const Architecture& discriminator, const ModelOptions& options, double size);

/// What one ELECTRA forward pass computed (sums, so micro-batches and eval batches add up).
struct ElectraStats {
  torch::Tensor loss;              // scalar to backward: generator_term + weight x discriminator_term
  torch::Tensor generator_term;    // scalar: the generator's MLM cross-entropy (mean over the masked positions)
  torch::Tensor discriminator_term;  // scalar: the discriminator's BCE (mean over the non-padding tokens)
  double generator_loss = 0;       // mean cross-entropy over the masked positions
  double discriminator_loss = 0;   // mean BCE over the non-padding tokens
  int64_t masked = 0;              // positions the generator predicted
  int64_t tokens = 0;              // non-padding tokens the discriminator judged
  int64_t replaced = 0;            // of those: replaced (sample != original)
  int64_t correct = 0;             // of those: judged right (logit > 0 <=> replaced)
};

/// Generator + discriminator. Parameters: "discriminator.*" (the FlexModel, checkpointed as the
/// model), "discriminator_predictions.*" (its head), "generator.*" (the generator's FlexModel; its own
/// embedding block and head are built but unused, hence frozen), "generator_predictions.*",
/// "embeddings_project.*" (only when the generator's first width differs from the discriminator's).
class ElectraModelImpl : public torch::nn::Module {
 public:
  /// Builds the generator and both heads around `discriminator` (kept, not copied); initialised from
  /// the global torch RNG like FlexModel.
  ElectraModelImpl(FlexModel discriminator, const ElectraOptions& options);

  /// input_ids: [B,T] masked ids; attention_mask: [B,T]; labels: [B,T] original id where masked,
  /// -100 elsewhere (an MlmBatch); uniforms: [B,T] float in [0,1), the sampling noise of each
  /// position (sampling_uniforms). Run under autocast by the caller if wanted.
  ElectraStats forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const torch::Tensor& labels,
                       const torch::Tensor& uniforms);

  /// Generator MLM logits of the masked positions: [B,T] masked ids -> [N,V] fp32 (N = labelled
  /// positions, in row-major order).
  torch::Tensor generator_logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                 const torch::Tensor& picked);
  /// Discriminator logits: [B,T] ids -> [B,T] fp32 (> 0: "replaced").
  torch::Tensor discriminator_logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  /// Inverse-CDF samples from softmax(logits): logits [N,V], uniforms [N] in [0,1) -> [N] int64. No
  /// gradient.
  static torch::Tensor sample(const torch::Tensor& logits, const torch::Tensor& uniforms);

  FlexModel discriminator() const { return discriminator_; }
  FlexModel generator() const { return generator_; }
  const ElectraOptions& options() const { return options_; }
  /// The word-embedding matrix [V, h_0] both models read (the discriminator's parameter itself).
  torch::Tensor shared_word_embeddings() const;

  /// Tensors of the discriminator's head (kDiscriminatorHeadFile) and of the generator with its
  /// head and projection (kGeneratorFile; its frozen, unused embedding block and head left out).
  NamedTensors discriminator_head_tensors() const;
  NamedTensors generator_tensors() const;
  /// Loads what the two functions above wrote; ConfigError naming the file and tensor otherwise.
  void load_discriminator_head(const std::string& path);
  void load_generator(const std::string& path);

 private:
  ElectraOptions options_;
  FlexModel discriminator_{nullptr}, generator_{nullptr};
  torch::nn::Linear project_{nullptr};                    // [h_0] -> [g_0], or none
  torch::nn::Linear gen_dense_{nullptr};                   // [g_last] -> [h_0]
  torch::nn::LayerNorm gen_norm_{nullptr};                 // [h_0]
  torch::Tensor gen_bias_;                                 // [V]
  torch::nn::Linear disc_dense_{nullptr}, disc_out_{nullptr};  // [h] -> [h] -> [1]
};
TORCH_MODULE(ElectraModel);

/// The sampling noise of batch `index` of stream `stream` (0 = training steps, 1 = held-out
/// batches): [B,T] uniforms in [0,1) from a CPU generator seeded by (seed, stream, index) only.
torch::Tensor sampling_uniforms(uint64_t seed, uint64_t stream, int64_t index, int64_t batch, int64_t seq_len);

/// One batch's ELECTRA loss and gradients in `micro` micro-batches (split along the batch; each
/// part's generator loss weighted by its share of the masked positions, its discriminator loss by its
/// share of the tokens, so the gradients equal the whole batch's up to rounding). Forward under
/// autocast in `precision`, backward outside, loss x `loss_scale` (fp16). Returns the summed stats
/// (tensors undefined; generator_loss / discriminator_loss are the batch's means).
ElectraStats electra_accumulate_gradients(ElectraModelImpl& model, const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask, const torch::Tensor& labels,
                                          const torch::Tensor& uniforms, int64_t micro, Precision precision,
                                          double loss_scale = 1.0);

}  // namespace flexnas::models
