#include "nas/cost_model.h"

#include <cmath>
#include <string>

#include "design_space/error.h"
#include "models/op_registry.h"

namespace flexnas::nas {
namespace {

int64_t linear_params(int64_t in, int64_t out) { return in * out + out; }
double linear_flops(int64_t in, int64_t out) { return 2.0 * double(in) * double(out); }

}  // namespace

ModelCost estimate_cost(const Architecture& arch, const CostSettings& s) {
  FLEXNAS_CHECK(!arch.layers.empty(), "architecture without layers");
  ModelCost cost;
  const double T = double(s.sequence_length);
  const int64_t rel_rows = 2 * s.max_positions - 1;
  const int64_t h0 = arch.layers.front().hidden;
  // Embeddings: word, absolute positions (kept though unused under relative_key), 1 token type, LayerNorm.
  cost.parameters += (s.vocab_size + s.max_positions + 1) * h0 + 2 * h0;

  for (size_t i = 0; i < arch.layers.size(); ++i) {
    const LayerSpec& layer = arch.layers[i];
    const int64_t h = layer.hidden;
    int64_t core_width = h;  // width of the attention core's output (n*D in hetero)
    if (arch.is_hetero()) {
      int64_t width = 0;
      for (const HeadSpec& head : layer.head_list) width += head.dim;
      core_width = width;
      cost.parameters += 3 * linear_params(h, width);
      cost.flops_per_token += 3 * linear_flops(h, width);
      for (const HeadSpec& head : layer.head_list) {
        const int64_t D = head.dim;
        cost.parameters += rel_rows * D;                  // relative-position table per head slice
        if (head.type == "ak") {
          // Attention kernels (newer than the fork): the model registry's exact head count (its
          // own kernel tables and convolutions; scores and context per head).
          models::HeadConfig c;
          c.param = head.param;
          c.dim = D;
          c.max_positions = s.max_positions;
          const models::OpDefinition& def = *models::op_registry().find("ak");
          cost.parameters += def.head_params(c);
          cost.flops_per_token += def.head_flops(c, s.sequence_length);
          continue;
        }
        cost.flops_per_token += 4.0 * T * double(D);      // scores + context per head
        if (head.type == "sa" && head.param == "wma") {
          cost.parameters += D * D;
          cost.flops_per_token += 2.0 * D * D;
        } else if (head.type == "c") {
          const int64_t k = std::stoll(head.param);
          cost.parameters += D * k + D * D + D;            // separable conv (depthwise + pointwise + bias)
          cost.parameters += linear_params(D, k) + linear_params(D, D);
          cost.flops_per_token += 2.0 * D * k + 2.0 * D * D + linear_flops(D, k) + linear_flops(D, D) + 2.0 * D * k;
        } else if (head.type == "l") {
          cost.flops_per_token += 5.0 * D * std::log2(double(std::max<int64_t>(D, 2))) +
                                  5.0 * D * std::log2(std::max(T, 2.0));
        }
      }
    } else {
      const int64_t n = std::max<int64_t>(layer.heads, 1);
      const int64_t d = h / n;
      if (layer.op == "ak") {
        // Attention kernels (newer than the fork, which has no layout for them): the model
        // registry's exact core count (Q/K only when read, no relative-key table, kernel tables and
        // depthwise convolutions). The other types keep the fork's layout above and below.
        models::CoreConfig c;
        c.hidden = h;
        c.heads = n;
        c.param = layer.param;
        c.max_positions = s.max_positions;
        const models::OpDefinition& def = *models::op_registry().find("ak");
        cost.parameters += def.core_params(c);
        cost.flops_per_token += def.core_flops(c, s.sequence_length);
      } else if (layer.op == "c") {
        // ConvBERT mixed attention: a = max(n/2, 1) attention heads, A = a*d wide (spec §5.5).
        const int64_t a = std::max<int64_t>(n / 2, 1);
        const int64_t A = a * d;
        const int64_t k = std::stoll(layer.param);
        cost.parameters += 3 * linear_params(h, A) + d * d + rel_rows * d;
        cost.parameters += h * k + h * A + A;              // depthwise + pointwise + bias
        cost.parameters += linear_params(A, a * k) + linear_params(h, A);
        cost.flops_per_token += 3 * linear_flops(h, A) + 4.0 * T * A + 2.0 * h * k + 2.0 * h * A +
                                linear_flops(A, a * k) + linear_flops(h, A) + 2.0 * A * k;
      } else {
        // sa and l: Q/K/V h->h, one d x d wma matrix (allocated even for sdp), relative table.
        cost.parameters += 3 * linear_params(h, h) + d * d + rel_rows * d;
        cost.flops_per_token += 3 * linear_flops(h, h) + 4.0 * T * h;
        if (layer.op == "sa" && layer.param == "wma") cost.flops_per_token += 2.0 * n * d * d;
        if (layer.op == "l")
          cost.flops_per_token += 5.0 * h * std::log2(double(std::max<int64_t>(h, 2))) + 5.0 * h * std::log2(std::max(T, 2.0));
      }
    }
    // SelfOutput: Linear(core -> h) + LayerNorm.
    cost.parameters += linear_params(core_width, h) + 2 * h;
    cost.flops_per_token += linear_flops(core_width, h);
    // Feed-forward stack and Output: Linear(f_m -> h) + LayerNorm.
    int64_t in = h;
    for (int64_t w : layer.ffn) {
      cost.parameters += linear_params(in, w);
      cost.flops_per_token += linear_flops(in, w);
      in = w;
    }
    cost.parameters += linear_params(in, h) + 2 * h;
    cost.flops_per_token += linear_flops(in, h);
    // Projection to the next layer's width.
    if (i + 1 < arch.layers.size() && arch.layers[i + 1].hidden != h) {
      cost.parameters += linear_params(h, arch.layers[i + 1].hidden);
      cost.flops_per_token += linear_flops(h, arch.layers[i + 1].hidden);
    }
  }
  const int64_t h_last = arch.layers.back().hidden;
  if (s.include_pooler) cost.parameters += linear_params(h_last, h_last);
  return cost;
}

}  // namespace flexnas::nas
