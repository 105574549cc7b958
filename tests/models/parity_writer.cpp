// models_parity_writer DIR: for every registered operation type (each example parameter) in both
// model-dict formats, and for each head type, writes a checkpoint DIR/<case>/ plus
// DIR/<case>/io.safetensors holding input_ids, attention_mask, the eval-mode logits, labels, loss and
// the model-dict FLOPs per token. The
// python parity test (tests/models/python_parity.py) recomputes the logits with flexnas_torch.py.
#include <torch/torch.h>

#include <cctype>
#include <filesystem>
#include <iostream>

#include "models/checkpoint.h"
#include "models/op_registry.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

using namespace flexnas;
using namespace flexnas::models;

namespace {

void write_case(const std::string& dir, const std::string& name, const Architecture& arch, const ModelOptions& options) {
  torch::manual_seed(42);
  FlexModel model(arch, options);
  model->eval();
  // Larger-than-initial weights make differences visible: perturb every parameter a little.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  auto [ids, mask] = testing::tiny_batch(options.vocab_size, 8, 5);
  torch::NoGradGuard no_grad;
  auto logits = model->forward(ids, mask).logits;
  // Labels for the loss of each head type (-100 = ignored).
  torch::Tensor labels;
  if (options.head == HeadType::kMlm) {
    auto pos = torch::arange(ids.size(1)).unsqueeze(0).expand_as(ids);
    labels = torch::where((pos.remainder(3) == 0) & (mask == 1), ids, torch::full_like(ids, -100));
  } else if (options.head == HeadType::kSequence) {
    labels = options.num_labels == 1 ? torch::tensor({0.25f, -1.5f}) : torch::tensor({0L, options.num_labels - 1});
  } else {
    labels = ids.remainder(options.num_labels).masked_fill(mask == 0, -100);
  }
  auto loss = model->loss(ids, mask, labels);
  // Directory names keep letters, digits and '_' ("ak_qk+convq:4" -> "ak_qk_convq_4").
  std::string safe = name;
  for (char& ch : safe)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  const std::string out = (std::filesystem::path(dir) / safe).string();
  save_checkpoint(out, *model);
  write_safetensors(out + "/io.safetensors", {{"input_ids", ids}, {"attention_mask", mask}, {"logits", logits},
                                              {"labels", labels}, {"loss", loss},
                                              // FLOPs per token from the model dict, at this batch's length
                                              {"flops_per_token", torch::tensor(model_cost(arch, options, ids.size(1)).total_flops_per_token,
                                                                                torch::kDouble)}});
  std::cout << safe << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: models_parity_writer DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  for (const auto& op : op_registry().names())
    for (const auto& param : op_registry().find(op)->example_params) {
      write_case(dir, "standard_" + op + "_" + param, testing::standard_arch(op, param), testing::tiny_options());
      write_case(dir, "hetero_" + op + "_" + param, testing::hetero_arch(op, param), testing::tiny_options());
    }
  write_case(dir, "standard_c_one_head", testing::standard_arch("c", "3", 1), testing::tiny_options());
  write_case(dir, "head_cls", testing::standard_arch("l", "dft"), testing::tiny_options(HeadType::kSequence));
  ModelOptions cls_first = testing::tiny_options(HeadType::kSequence);  // the sequence head on [CLS] alone
  cls_first.classifier_pooling = ClassifierPooling::kFirst;
  write_case(dir, "head_cls_first", testing::standard_arch("l", "dft"), cls_first);
  write_case(dir, "funnel_cls_first",
             testing::arch_from(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[24],[24]],"p":["sdp","sdp"],)"
                                R"("pool":{"stride":[1,2]}})"),
             cls_first);
  write_case(dir, "head_token", testing::hetero_arch("sa", "wma"), testing::tiny_options(HeadType::kToken));
  ModelOptions regression = testing::tiny_options(HeadType::kSequence);
  regression.num_labels = 1;
  write_case(dir, "head_regression", testing::standard_arch("c", "5"), regression);
  // Op ak: every component at once, one head (the convolved first half is the whole layer), a
  // sequence head, and a hetero layer of ak heads only (the layer's relative table unused by them).
  const std::string all_ak = "qk+convfixed+convq+convk+vconv+qkconv:3";
  write_case(dir, "standard_ak_all", testing::standard_arch("ak", all_ak), testing::tiny_options());
  write_case(dir, "hetero_ak_all", testing::hetero_arch("ak", all_ak), testing::tiny_options());
  write_case(dir, "standard_ak_one_head", testing::standard_arch("ak", "convk+vconv+qkconv:2", 1), testing::tiny_options());
  write_case(dir, "head_cls_ak", testing::standard_arch("ak", "qk+convq:9"), testing::tiny_options(HeadType::kSequence));
  write_case(dir, "hetero_ak_only",
             testing::arch_from(R"({"l":1,"h":[16],"f":[[24]],"o":[["ak_convfixed:2_8","ak_qk+convk:4_8"]]})"),
             testing::tiny_options());
  // Funnel pooling: pool-q-only sa layers, an l layer that pools its whole stream, a width change at
  // the pooling layer (decoder up-projection), every head; a hetero model; pool_q_only off without
  // separate [CLS]. 8 tokens: 8 -> 5 -> 3 ([CLS] apart).
  const char* funnel =
      R"({"l":4,"h":[16,16,24,24],"n":[2,2,2,2],"o":["sa","sa","l","sa"],"f":[[24],[24],[20],[20]],)"
      R"("p":["sdp","wma","dct","sdp"],"pool":{"stride":[1,1,2,2],"decoder":1}})";
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence, HeadType::kToken})
    write_case(dir, "funnel_" + head_type_name(head), testing::arch_from(funnel), testing::tiny_options(head));
  write_case(dir, "funnel_hetero",
             testing::arch_from(R"({"l":2,"h":[16,16],"f":[[24],[20]],"o":[["sa_sdp_8","l_dct_8"],["sa_sdp_8","sa_wma_8"]],)"
                                R"("pool":{"stride":[1,2],"decoder":2}})"),
             testing::tiny_options());
  write_case(dir, "funnel_pool_all_no_cls",
             testing::arch_from(R"({"l":3,"h":[16,16,16],"n":[2,2,2],"o":["sa","sa","sa"],"f":[[24],[24],[24]],)"
                                R"("p":["sdp","sdp","sdp"],"pool":{"stride":[1,2,3],"q_only":false,"separate_cls":false}})"),
             testing::tiny_options());
  // Block parameter sharing (Funnel's "3x2"): layer 1 runs with layer 0's parameters, layer 3 with
  // layer 2's and pools at its first application (layer 2), layer 3 owns a projection to layer 4's
  // width; every head, a hetero model.
  const char* shared =
      R"({"l":5,"h":[16,16,16,16,24],"n":[2,2,2,2,2],"o":["sa","sa","sa","sa","l"],"f":[[24],[24],[20],[20],[20]],)"
      R"("p":["sdp","sdp","wma","wma","dft"],"share":[0,0,2,2,4],"pool":{"stride":[1,1,2,1,1],"decoder":1}})";
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence, HeadType::kToken})
    write_case(dir, "share_" + head_type_name(head), testing::arch_from(shared), testing::tiny_options(head));
  write_case(dir, "share_hetero",
             testing::arch_from(R"({"l":3,"h":[16,16,16],"f":[[24],[24],[24]],)"
                                R"("o":[["sa_sdp_8","c_3_8"],["sa_sdp_8","c_3_8"],["sa_sdp_8","c_3_8"]],"share":[0,0,0]})"),
             testing::tiny_options());
  return 0;
}
