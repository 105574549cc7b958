#pragma once
// FlexModel: a heterogeneous BERT-style encoder built from an Architecture (spec §5) through the
// operation registry, optionally with Funnel pooling and its up-sampling decoder (bert.decoder.*), with an untied MLM head, a sequence classification/regression head or a
// token classification head. Tensor names follow Hugging Face BERT (bert.embeddings.*,
// bert.encoder.layer.<i>.attention.self.query.weight, cls.predictions.*, classifier.*).
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "design_space/architecture.h"
#include "design_space/enum_names.h"
#include "models/op_registry.h"

namespace flexnas::models {

enum class HeadType { kMlm, kSequence, kToken };
/// The spellings: mlm, cls, token (config.json's head, `flexnas model info --head`).
const EnumNames<HeadType>& head_type_names();
/// "mlm" | "cls" | "token".
std::string head_type_name(HeadType head);
/// Parses "mlm" | "cls" | "token"; throws ConfigError naming `what` (a flag or a key) otherwise.
HeadType parse_head_type(const std::string& text, const std::string& what);

/// What the sequence head's pooler reads: the first token ([CLS], as BERT) or the mean of the valid
/// (unpadded) tokens of the last layer. The mean gives every token's representation a gradient from
/// the task, so a small encoder pretrained briefly still learns the task instead of predicting one
/// class (docs/training.md, "Pooling").
enum class ClassifierPooling { kFirst, kMean };
/// The spellings: mean, first (config.json's classifier_pooling, `flexnas finetune --pooling`).
const EnumNames<ClassifierPooling>& classifier_pooling_names();

/// Everything besides the architecture; these initialisers are the only defaults.
struct ModelOptions {
  int64_t vocab_size = 30522;        // token vocabulary (the tokenizer's size)
  int64_t max_positions = 514;       // longest sequence; distance tables have 2*max_positions-1 rows
  int64_t type_vocab_size = 1;       // token types (RoBERTa style: one)
  int64_t pad_id = 0;                // padding token: its embedding row starts at zero
  double hidden_dropout = 0.1;       // embeddings, attention output, FFN output
  double attention_dropout = 0.1;    // attention probabilities
  double classifier_dropout = 0.1;   // before the classification layer
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;   // std of the normal initialisation
  HeadType head = HeadType::kMlm;    // which head sits on top
  int64_t num_labels = 2;            // classes of cls/token heads; 1 = regression (cls only)
  // The cls head's pooler input. A config.json without the key was written before it existed: first.
  ClassifierPooling classifier_pooling = ClassifierPooling::kMean;

  nlohmann::ordered_json to_json() const;
  /// Reads the keys written by to_json (each optional; unknown keys and bad values are located
  /// ConfigErrors).
  static ModelOptions from_config(const ConfigNode& node);
};

/// The dimensions a layer's core (standard format) or one hetero head is built, checked, priced and
/// laid out with: every user of the registry's hooks builds them here.
CoreConfig core_config(const LayerSpec& layer, const ModelOptions& options);
HeadConfig head_config(const HeadSpec& head, const ModelOptions& options);

/// Parameters and forward FLOPs per token of one block ("embeddings", "layer 0", ..., "head").
struct BlockCost {
  std::string name;
  int64_t params = 0;
  double flops_per_token = 0;  // 2 per multiply-add, matrix products only
};
struct ModelCost {
  std::vector<BlockCost> blocks;
  int64_t total_params = 0;
  double total_flops_per_token = 0;
  int64_t seq_len = 0;  // the sequence length the FLOPs assume
};

/// Checks the architecture against the registry and the options: known operation types and
/// parameters, heads dividing widths, positive sizes. Throws ConfigError located at `where`
/// (a file name) and the model-dict key ("o[2]"); when `source` (the node the architecture was
/// read from) is given, the error carries its line and column too.
void validate_architecture(const Architecture& arch, const ModelOptions& options, const std::string& where = "",
                           const ConfigNode* source = nullptr);

/// Parameters and FLOPs from the model dict alone (no model is built); equals the instantiated
/// model's parameter count. FLOPs assume sequences of `seq_len` tokens and count the head at every
/// position.
ModelCost model_cost(const Architecture& arch, const ModelOptions& options, int64_t seq_len = 128);

/// The size measure of the search (a campaign's `parameters` column, design-space constraints):
/// the base model of a sequence task, as built — embeddings at options.vocab_size (no absolute
/// positions), the encoder (Funnel pooling included; no decoder) and, with `include_pooler`, the
/// pooler; no classifier. FLOPs: the encoder's per input token at `seq_len` (the head not counted).
struct BaseModelCost {
  int64_t parameters = 0;
  double flops_per_token = 0;
};
BaseModelCost base_model_cost(const Architecture& arch, const ModelOptions& options, int64_t seq_len = 128,
                              bool include_pooler = true);

/// What forward returns.
struct ModelOutput {
  torch::Tensor logits;  // mlm: [B,T,V]; cls: [B,K]; token: [B,T,K]
  torch::Tensor hidden;  // last layer: [B,T,h_{L-1}]
};

class FlexModelImpl : public torch::nn::Module {
 public:
  /// Validates (ConfigError) and builds; parameters are initialised from the global torch RNG
  /// (seed with torch::manual_seed first).
  FlexModelImpl(const Architecture& arch, const ModelOptions& options);

  /// input_ids: [B,T] int64; attention_mask: [B,T] (1 token, 0 padding).
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  /// Hidden states of the last layer only: [B,T,h_{L-1}]. Under Funnel pooling the last layer has
  /// fewer tokens ([B,T',h]; [CLS] stays token 0); token-level heads (mlm, token) get the decoder's
  /// full-length output [B,T,h] instead (h = the width of the last layer before the first pooling).
  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  /// The embedding block alone (word + token type, LayerNorm, dropout): [B,T] ids -> [B,T,h_0].
  torch::Tensor embed(const torch::Tensor& input_ids);
  /// encode() from embeddings computed elsewhere, this model's own embedding block unused:
  /// [B,T,h_0] float -> what encode returns. ELECTRA's generator runs on the discriminator's shared
  /// embeddings (models/electra.h).
  torch::Tensor encode_embeddings(const torch::Tensor& embeddings, const torch::Tensor& attention_mask);
  /// Per-layer representations from one forward pass: element 0 is the embeddings' output
  /// [B,T,h_0], element i+1 layer i's output [B,T,h_i] (after its output LayerNorm, before the
  /// projection to the next layer's width). The pass stops at element `last_index` (0 = the
  /// embeddings only, l+1 = through layer l, -1 = every layer), so a probe of layer 1 does not pay
  /// for the layers above it. The tensors are the forward pass's own intermediates (no copy). Under
  /// Funnel pooling, layers from the first pooling one on have fewer tokens (pooling.h).
  std::vector<torch::Tensor> encode_layers(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                           int64_t last_index = -1);
  /// Training loss. mlm: cross-entropy over positions whose label is not -100 (the MLM head runs on
  /// those positions only); cls: cross-entropy over [B] labels, or MSE on [B] float targets when
  /// num_labels == 1; token: cross-entropy over [B,T] labels, -100 ignored.
  torch::Tensor loss(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const torch::Tensor& labels);

  const Architecture& architecture() const { return arch_; }
  const ModelOptions& options() const { return options_; }
  /// Per-class weights of the cross-entropy of cls/token heads ([K] float; undefined = all 1).
  /// Fine-tuning sets them from the training labels so a rare class is not ignored.
  void set_class_weights(const torch::Tensor& weights) { class_weights_ = weights; }
  const torch::Tensor& class_weights() const { return class_weights_; }

  /// Width of what encode() returns: the last layer's, or under Funnel pooling with a token-level
  /// head the decoder's (the last full-length layer's).
  int64_t output_width() const;
  /// Number of scalar parameters.
  int64_t num_parameters() const;
  /// The base model ("bert": embeddings, encoder, pooler for cls heads), e.g. for weight transfer.
  std::shared_ptr<torch::nn::Module> base() const { return bert_; }

 private:
  /// The head on encode()'s output. `attention_mask` [B,T] (the input's) is used by the mean-pooling
  /// sequence head only; the MLM head gets the labelled positions [N,h] and no mask.
  torch::Tensor head_logits(const torch::Tensor& hidden, const torch::Tensor& attention_mask = {});
  /// Which positions of the last layer's stream are tokens: the input mask [B,T] pooled as the
  /// encoder pools (Funnel), so [B,T'] for `hidden` of T' positions.
  torch::Tensor stream_valid(const torch::Tensor& attention_mask, int64_t positions) const;
  /// The encoder over its first `run_layers` layers: calls `visit(i, x)` with the embeddings
  /// (i = 0) and each layer's output (i = l+1); returns the stream after the last layer run.
  /// Under Funnel pooling, `full_length` (when given) receives the output of the last layer before
  /// the first pooling one, before its projection (the decoder's residual).
  template <typename Visit>
  torch::Tensor run_encoder(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, int64_t run_layers,
                            Visit&& visit, torch::Tensor* full_length = nullptr);
  /// Funnel decoder: the last (pooled) stream x [B,T',h_L] -> [B,T,h] at full length.
  torch::Tensor decode(const torch::Tensor& x, const torch::Tensor& full_length, const torch::Tensor& attention_mask);

  Architecture arch_;
  ModelOptions options_;
  std::shared_ptr<torch::nn::Module> bert_;
  struct Parts;
  std::shared_ptr<Parts> parts_;
  torch::Tensor class_weights_;  // not a buffer: not saved, the checkpoint stays the model
};
TORCH_MODULE(FlexModel);

/// The device to use: CUDA when available, CPU otherwise.
torch::Device default_device();

}  // namespace flexnas::models
