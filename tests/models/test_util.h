#pragma once
// Tiny architectures and inputs shared by the models tests.
#include <torch/torch.h>

#include <string>

#include "design_space/architecture.h"
#include "models/flex_model.h"

namespace flexnas::models::testing {

/// Model dict from JSON text.
inline Architecture arch_from(const std::string& json) { return architecture_from_json(nlohmann::json::parse(json)); }

/// One standard layer of `op`/`param` (h = 16, n heads) on top of a second layer of another width,
/// so the projection between widths is exercised too.
inline Architecture standard_arch(const std::string& op, const std::string& param, int64_t heads = 2) {
  const bool digits = !param.empty() && std::isdigit((unsigned char)param[0]);
  const std::string p = digits ? param : "\"" + param + "\"";
  return arch_from("{\"l\":2,\"h\":[16,24],\"n\":[" + std::to_string(heads) + ",2],\"o\":[\"" + op +
                   "\",\"sa\"],\"f\":[[24,20],[32]],\"p\":[" + p + ",\"sdp\"]}");
}

/// Hetero: layer 0 = two heads of `op_param_8` plus one sa_sdp_8 head (width 24 != h = 16);
/// layer 1 = one `op_param_4` head among sa_wma_4, l_dct_4 and c_3_4 heads.
inline Architecture hetero_arch(const std::string& op, const std::string& param) {
  const std::string head = op + "_" + param;
  return arch_from("{\"l\":2,\"h\":[16,16],\"f\":[[24],[20]],\"o\":[[\"" + head + "_8\",\"" + head +
                   "_8\",\"sa_sdp_8\"],[\"" + head + "_4\",\"sa_wma_4\",\"l_dct_4\",\"c_3_4\"]]}");
}

inline ModelOptions tiny_options(HeadType head = HeadType::kMlm) {
  ModelOptions o;
  o.vocab_size = 40;
  o.max_positions = 16;
  o.head = head;
  o.num_labels = head == HeadType::kMlm ? 2 : 3;
  return o;
}

/// [2, 7] ids in 1..vocab-1 and a mask whose second row has 4 tokens then padding.
inline std::pair<torch::Tensor, torch::Tensor> tiny_batch(int64_t vocab = 40, int64_t T = 7, int64_t valid2 = 4) {
  auto gen = torch::arange(2 * T, torch::kLong).view({2, T});
  auto ids = (gen * 7 + 3).remainder(vocab - 1) + 1;
  auto mask = torch::ones({2, T}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(valid2, torch::indexing::None)}, 0);
  return {ids, mask};
}

}  // namespace flexnas::models::testing
