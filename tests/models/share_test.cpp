// Block parameter sharing (Funnel-Transformer's "3x2" blocks; model-dict key "share"): a shared
// model is the unshared one with tied copies, its parameters count once and its FLOPs every
// application, checkpoints store each shared tensor once, and the checks locate bad keys.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/error.h"
#include "models/checkpoint.h"
#include "models/electra.h"
#include "models/flex_model.h"
#include "models/safetensors.h"
#include "test_util.h"

namespace flexnas::models {
namespace {

using testing::arch_from;
using testing::tiny_options;

// Layer 1 runs with layer 0's parameters, layer 3 with layer 2's (pooling at layer 2, its first
// application); layer 3 owns a projection to layer 4's width.
const std::string kLayers =
    R"("l":5,"h":[16,16,16,16,24],"n":[2,2,2,2,2],"o":["sa","sa","c","c","l"],"f":[[24],[24],[20],[20],[20]],)"
    R"("p":["sdp","sdp","3","3","dft"],"pool":{"stride":[1,1,2,1,1],"decoder":1})";
const std::string kShared = "{" + kLayers + R"(,"share":[0,0,2,2,4]})";
const std::string kUnshared = "{" + kLayers + "}";

/// Copies the shared model's parameters into the unshared one: layer i gets its owner's tensors,
/// its own proj_head, everything else by name.
void copy_tied(FlexModelImpl& shared, FlexModelImpl& unshared) {
  torch::NoGradGuard no_grad;
  const Architecture& arch = shared.architecture();
  auto source = shared.named_parameters();
  for (auto& item : unshared.named_parameters()) {
    std::string name = item.key();
    const std::string prefix = "bert.encoder.layer.";
    if (name.rfind(prefix, 0) == 0 && name.find(".proj_head.") == std::string::npos) {
      const size_t dot = name.find('.', prefix.size());
      const size_t i = size_t(std::stoll(name.substr(prefix.size(), dot - prefix.size())));
      name = prefix + std::to_string(arch.owner(i)) + name.substr(dot);
    }
    ASSERT_NE(source.find(name), nullptr) << name;
    item.value().copy_(source[name]);
  }
}

TEST(SharedLayers, ComputeTheUnsharedModelWithTiedCopiesForEveryHead) {
  auto [ids, mask] = testing::tiny_batch(40, 9, 5);
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence, HeadType::kToken}) {
    torch::manual_seed(1);
    FlexModel shared(arch_from(kShared), tiny_options(head));
    FlexModel unshared(arch_from(kUnshared), tiny_options(head));
    {
      torch::NoGradGuard no_grad;
      for (auto& p : shared->parameters()) p.add_(torch::randn_like(p) * 0.05);
    }
    copy_tied(*shared, *unshared);
    shared->eval();
    unshared->eval();
    auto a = shared->forward(ids, mask).logits, b = unshared->forward(ids, mask).logits;
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << head_type_name(head) << " " << (a - b).abs().max().item<double>();
    // Per-layer outputs too (probes): every application is a layer of its own.
    auto la = shared->encode_layers(ids, mask), lb = unshared->encode_layers(ids, mask);
    ASSERT_EQ(la.size(), 6u);
    for (size_t l = 0; l < la.size(); ++l) EXPECT_TRUE(torch::allclose(la[l], lb[l], 1e-5, 1e-6)) << l;
  }
}

TEST(SharedLayers, ParametersCountOnceAndFlopsEveryApplication) {
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence}) {
    const ModelOptions o = tiny_options(head);
    FlexModel shared(arch_from(kShared), o), unshared(arch_from(kUnshared), o);
    const ModelCost cs = model_cost(arch_from(kShared), o, 9), cu = model_cost(arch_from(kUnshared), o, 9);
    EXPECT_EQ(shared->num_parameters(), cs.total_params);
    EXPECT_EQ(unshared->num_parameters(), cu.total_params);
    // The shared model lacks exactly layer 1's and layer 3's own copies (layer 3's proj_head stays).
    EXPECT_EQ(cu.total_params - cs.total_params, cu.blocks[2].params + cu.blocks[4].params - 16 * 24 - 24);
    EXPECT_EQ(cs.blocks[2].name, "layer 1 (shares 0)");
    EXPECT_EQ(cs.blocks[2].params, 0);
    EXPECT_EQ(cs.blocks[4].params, 16 * 24 + 24);  // proj_head
    EXPECT_DOUBLE_EQ(cs.total_flops_per_token, cu.total_flops_per_token);
    const BaseModelCost bs = base_model_cost(arch_from(kShared), o), bu = base_model_cost(arch_from(kUnshared), o);
    EXPECT_EQ(bu.parameters - bs.parameters, cu.total_params - cs.total_params);
    EXPECT_DOUBLE_EQ(bs.flops_per_token, bu.flops_per_token);
  }
  // No parameter appears twice: the sharing layer holds no tensor but its own projection.
  FlexModel shared(arch_from(kShared), tiny_options());
  for (const auto& item : shared->named_parameters()) {
    EXPECT_EQ(item.key().rfind("bert.encoder.layer.1.", 0), std::string::npos) << item.key();
    if (item.key().rfind("bert.encoder.layer.3.", 0) == 0) EXPECT_NE(item.key().find(".proj_head."), std::string::npos) << item.key();
  }
}

TEST(SharedLayers, GradientsOfBothApplicationsReachTheOneTensor) {
  // With layer 1's copy tied to layer 0, the gradient of the shared query weight is the sum of the
  // unshared model's gradients of layer 0's and layer 1's query weights.
  torch::manual_seed(2);
  const std::string shared_json =
      R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[24],[24]],"p":["sdp","sdp"],"share":[0,0]})";
  const std::string unshared_json = R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[24],[24]],"p":["sdp","sdp"]})";
  ModelOptions o = tiny_options();
  o.hidden_dropout = o.attention_dropout = 0;
  FlexModel shared(arch_from(shared_json), o), unshared(arch_from(unshared_json), o);
  copy_tied(*shared, *unshared);
  auto [ids, mask] = testing::tiny_batch(40, 7, 4);
  auto labels = torch::where(torch::arange(7).remainder(2).eq(0).unsqueeze(0).expand_as(ids), ids, torch::full_like(ids, -100));
  shared->loss(ids, mask, labels).backward();
  unshared->loss(ids, mask, labels).backward();
  auto gs = shared->named_parameters();
  auto gu = unshared->named_parameters();
  const std::string q = ".attention.self.query.weight";
  auto expected = gu["bert.encoder.layer.0" + q].grad() + gu["bert.encoder.layer.1" + q].grad();
  EXPECT_TRUE(torch::allclose(gs["bert.encoder.layer.0" + q].grad(), expected, 1e-5, 1e-7));
}

TEST(SharedLayers, CheckpointsStoreEachSharedTensorOnceAndLoadBack) {
  torch::manual_seed(3);
  const std::string dir = ::testing::TempDir() + "/share_ckpt";
  FlexModel model(arch_from(kShared), tiny_options());
  model->eval();
  save_checkpoint(dir, *model);
  const auto tensors = read_safetensors(dir + "/model.safetensors");
  int64_t stored = 0;
  for (const auto& [name, t] : tensors) {
    stored += t.numel();
    EXPECT_EQ(name.rfind("bert.encoder.layer.1.", 0), std::string::npos) << name;
  }
  EXPECT_EQ(stored, model->num_parameters());
  CheckpointConfig config;
  auto loaded = load_checkpoint(dir, torch::kCPU, &config);
  loaded->eval();
  EXPECT_EQ(loaded->architecture(), arch_from(kShared));
  auto [ids, mask] = testing::tiny_batch(40, 9, 5);
  EXPECT_TRUE(torch::equal(model->forward(ids, mask).logits, loaded->forward(ids, mask).logits));
}

TEST(SharedLayers, ElectraGeneratorKeepsTheSharing) {
  const Architecture g = checked_generator_architecture(arch_from(kShared), tiny_options(), 0.5);
  EXPECT_EQ(g.share, arch_from(kShared).share);
  FlexModel generator(g, tiny_options());
  EXPECT_EQ(generator->num_parameters(), model_cost(g, tiny_options()).total_params);
}

TEST(SharedLayers, ArchitecturesBuiltInCodeAreCheckedWithLocatedErrors) {
  auto error_of = [](const Architecture& arch) {
    try {
      validate_architecture(arch, tiny_options(), "shared.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  Architecture a = arch_from(kShared);
  a.share = {0, 0, 2};
  EXPECT_EQ(error_of(a), "shared.json: error: share: needs one entry per layer (5), got 3");
  a.share = {0, 0, 2, 4, 4};
  EXPECT_EQ(error_of(a),
            "shared.json: error: share[3]: layer 3 can run with the parameters of layer 0..3 (itself or an earlier layer), "
            "got 4");
  a.share = {0, 0, 0, 2, 4};
  EXPECT_EQ(error_of(a),
            "shared.json: error: share[2]: layer 2 cannot run with the parameters of layer 0: its feed-forward stack "
            "differs ([20] here, [24] there); shared layers need the same h, n, o, f and p");
  a.share = {0, 0, 2, 2, 2};
  EXPECT_EQ(error_of(a),
            "shared.json: error: share[4]: layer 4 cannot run with the parameters of layer 2: its hidden size differs "
            "(24 here, 16 there); shared layers need the same h, n, o, f and p");
  EXPECT_THROW(FlexModel(a, tiny_options()), ConfigError);
}

}  // namespace
}  // namespace flexnas::models
