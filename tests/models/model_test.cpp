// FlexModel: parameter counts against the reference, the fixed defects (28, 33, 34, 35), heads,
// losses and validation messages.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/config_node.h"
#include "design_space/error.h"
#include "models/attention_common.h"
#include "models/op_registry.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {

using testing::arch_from;
using testing::tiny_batch;
using testing::tiny_options;

const char* kFlexiBertMini =
    R"({"l":4,"o":["sa","sa","l","l"],"h":[256,256,128,128],"n":[2,2,4,4],)"
    R"("f":[[512,512,512],[512,512,512],[1024],[1024]],"p":["sdp","sdp","dct","dct"]})";
const char* kBertTiny = R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})";

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

// Copies every tensor of `from` into the same-named tensor of `to`; returns the names `to` has
// that `from` lacks.
std::vector<std::string> copy_weights(FlexModelImpl& from, FlexModelImpl& to) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters();
  std::vector<std::string> missing;
  for (auto& item : to.named_parameters()) {
    if (auto* t = src.find(item.key())) item.value().copy_(*t);
    else missing.push_back(item.key());
  }
  return missing;
}

TEST_F(ModelTest, FlexiBertMiniParameterCount) {
  // Reference (spec Appendix A): 22,659,993 for the MLM model with vocabulary 50,265. flexnas drops
  // tensors the reference allocates but never uses (defect 34 and its kin):
  const int64_t reference = 22659993;
  const int64_t absolute_positions = 514 * 256;             // embeddings.position_embeddings (h_0 = 256)
  const int64_t sdp_wma_matrices = 2 * 128 * 128;           // W of the two sdp layers (d = 256/2)
  const int64_t linear_mixing_keys = 2 * (128 * 128 + 128);  // key projection of the two l layers
  ModelOptions o;
  o.vocab_size = 50265;
  const Architecture arch = arch_from(kFlexiBertMini);
  const ModelCost cost = model_cost(arch, o);
  EXPECT_EQ(cost.total_params, reference - absolute_positions - sdp_wma_matrices - linear_mixing_keys);
  EXPECT_EQ(cost.total_params, 22462617);
  FlexModel model(arch, o);
  EXPECT_EQ(model->num_parameters(), cost.total_params);
}

TEST_F(ModelTest, BertTinyBaseParameterCount) {
  // Reference base model + pooler, vocabulary 30,522: 4,525,696; minus the absolute position table
  // (514 x 128) and the two unused sdp W matrices (64 x 64).
  ModelOptions o;
  o.vocab_size = 30522;
  o.head = HeadType::kSequence;
  o.num_labels = 2;
  const ModelCost cost = model_cost(arch_from(kBertTiny), o);
  const int64_t classifier = 128 * 2 + 2;
  EXPECT_EQ(cost.total_params - classifier, 4525696 - 514 * 128 - 2 * 64 * 64);
}

TEST_F(ModelTest, ConvBertTinyParameterCount) {
  // Reference MLM model, vocabulary 50,265, k = 9: 13,516,011; minus the absolute position table.
  ModelOptions o;
  o.vocab_size = 50265;
  const auto arch = arch_from(R"({"l":2,"h":[128,128],"n":[2,2],"o":["c","c"],"f":[[512],[512]],"p":[9,9]})");
  EXPECT_EQ(model_cost(arch, o).total_params, 13516011 - 514 * 128);
}

TEST_F(ModelTest, TensorNamesFollowHuggingFaceBert) {
  FlexModel m(arch_from(kBertTiny), tiny_options(HeadType::kMlm));
  auto params = m->named_parameters();
  for (const char* name :
       {"bert.embeddings.word_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight", "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.attention.self.key.bias", "bert.encoder.layer.1.attention.self.value.weight",
        "bert.encoder.layer.0.attention.self.distance_embedding.weight", "bert.encoder.layer.0.attention.output.dense.weight",
        "bert.encoder.layer.0.attention.output.LayerNorm.bias", "bert.encoder.layer.0.intermediate.dense.weight",
        "bert.encoder.layer.0.output.dense.weight", "bert.encoder.layer.1.output.LayerNorm.weight",
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.decoder.weight", "cls.predictions.bias"})
    EXPECT_NE(params.find(name), nullptr) << name;
  FlexModel c(arch_from(kBertTiny), tiny_options(HeadType::kSequence));
  EXPECT_NE(c->named_parameters().find("bert.pooler.dense.weight"), nullptr);
  EXPECT_NE(c->named_parameters().find("classifier.weight"), nullptr);
}

TEST_F(ModelTest, Defect34NoAbsolutePositionTableAndConfigurableMaxPositions) {
  ModelOptions o = tiny_options();
  for (int64_t P : {16, 514}) {
    o.max_positions = P;
    FlexModel m(arch_from(kBertTiny), o);
    for (const auto& item : m->named_parameters()) EXPECT_EQ(item.key().find("position_embeddings"), std::string::npos);
    EXPECT_EQ(m->named_parameters()["bert.encoder.layer.1.attention.self.distance_embedding.weight"].sizes(),
              (std::vector<int64_t>{2 * P - 1, 64}));
  }
  o.max_positions = 6;
  FlexModel m(arch_from(kBertTiny), o);
  auto [ids, mask] = tiny_batch(40, 7);
  try {
    m->forward(ids, mask);
    FAIL() << "a sequence longer than max positions must be refused";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "sequence length 7 exceeds the model's max positions 6");
  }
}

TEST_F(ModelTest, Defect28HeteroSelfAttentionHeadsOutputTheirContext) {
  // A hetero layer of sa_sdp heads is a standard sa/sdp layer: same tensors, same outputs. The
  // reference's hetero sa heads output zeros instead.
  auto standard = arch_from(R"({"l":1,"h":[16],"n":[2],"o":["sa"],"f":[[24]],"p":["sdp"]})");
  auto hetero = arch_from(R"({"l":1,"h":[16],"f":[[24]],"o":[["sa_sdp_8","sa_sdp_8"]]})");
  FlexModel a(standard, tiny_options()), b(hetero, tiny_options());
  EXPECT_TRUE(copy_weights(*a, *b).empty());
  a->eval();
  b->eval();
  auto [ids, mask] = tiny_batch();
  EXPECT_TRUE(torch::allclose(a->forward(ids, mask).logits, b->forward(ids, mask).logits, 1e-5, 1e-5));
  // And the heads matter: zeroing the value projection changes the output.
  auto before = b->forward(ids, mask).hidden;
  torch::NoGradGuard no_grad;
  b->named_parameters()["bert.encoder.layer.0.attention.self.value.weight"].zero_();
  EXPECT_FALSE(torch::allclose(before, b->forward(ids, mask).hidden, 1e-4, 1e-4));
}

TEST_F(ModelTest, Defect33OneMixingDefinitionInBothFormats) {
  // A standard l layer equals a hetero layer of l heads (which also has an unused key projection).
  for (const char* t : {"dft", "dct"}) {
    auto standard = arch_from(std::string(R"({"l":1,"h":[16],"n":[2],"o":["l"],"f":[[24]],"p":[")") + t + "\"]}");
    auto hetero = arch_from(std::string(R"({"l":1,"h":[16],"f":[[24]],"o":[["l_)") + t + "_8\",\"l_" + t + "_8\"]]}");
    FlexModel a(standard, tiny_options()), b(hetero, tiny_options());
    EXPECT_EQ(copy_weights(*a, *b), (std::vector<std::string>{"bert.encoder.layer.0.attention.self.key.weight",
                                                              "bert.encoder.layer.0.attention.self.key.bias"}));
    a->eval();
    b->eval();
    auto [ids, mask] = tiny_batch();
    EXPECT_TRUE(torch::allclose(a->forward(ids, mask).logits, b->forward(ids, mask).logits, 1e-4, 1e-5)) << t;
  }
}

TEST_F(ModelTest, Defect33MixingMatchesFftAndIgnoresPadding) {
  auto x = torch::randn({2, 6, 5}, torch::kDouble);
  auto all = torch::ones({2, 6});
  // Without padding: dft = Re(FFT over features, then tokens); dct = 2-D unnormalised DCT-II.
  auto dft = linear_mix(x, all, Transform::kDft);
  EXPECT_TRUE(torch::allclose(dft, torch::real(torch::fft::fft2(x)), 1e-9, 1e-9));
  auto dct = linear_mix(x, all, Transform::kDct);
  auto expected = torch::zeros_like(x);
  for (int64_t k1 = 0; k1 < 6; ++k1)
    for (int64_t k2 = 0; k2 < 5; ++k2) {
      double acc0 = 0, acc1 = 0;
      for (int64_t n1 = 0; n1 < 6; ++n1)
        for (int64_t n2 = 0; n2 < 5; ++n2) {
          const double w = 4 * std::cos(M_PI * k1 * (2 * n1 + 1) / 12.0) * std::cos(M_PI * k2 * (2 * n2 + 1) / 10.0);
          acc0 += w * x[0][n1][n2].item<double>();
          acc1 += w * x[1][n1][n2].item<double>();
        }
      expected[0][k1][k2] = acc0;
      expected[1][k1][k2] = acc1;
    }
  EXPECT_TRUE(torch::allclose(dct, expected, 1e-9, 1e-9));
  // With padding (4 tokens in row 1): the tokens get the transform of the 4 tokens alone, padded
  // rows are zero, and padded values do not leak.
  auto mask = all.clone();
  mask.index_put_({1, torch::indexing::Slice(4, 6)}, 0);
  for (Transform t : {Transform::kDft, Transform::kDct}) {
    auto y = linear_mix(x, mask, t);
    auto alone = linear_mix(x.index({torch::indexing::Slice(1, 2), torch::indexing::Slice(0, 4)}), torch::ones({1, 4}), t);
    EXPECT_TRUE(torch::allclose(y.index({1, torch::indexing::Slice(0, 4)}), alone[0], 1e-9, 1e-9));
    EXPECT_EQ(y.index({1, torch::indexing::Slice(4, 6)}).abs().max().item<double>(), 0.0);
    auto x2 = x.clone();
    x2.index_put_({1, torch::indexing::Slice(4, 6)}, 1000.0);
    EXPECT_TRUE(torch::allclose(linear_mix(x2, mask, t), y, 1e-9, 1e-9));
  }
}

TEST_F(ModelTest, Defect35ConvLayersWithOneOrOddHeads) {
  for (const char* dict : {R"({"l":1,"h":[16],"n":[1],"o":["c"],"f":[[24]],"p":[5]})",
                           R"({"l":1,"h":[18],"n":[3],"o":["c"],"f":[[24]],"p":[3]})"}) {
    const auto arch = arch_from(dict);
    FlexModel m(arch, tiny_options());
    m->eval();
    auto [ids, mask] = tiny_batch();
    auto out = m->forward(ids, mask);
    EXPECT_EQ(out.hidden.sizes(), (std::vector<int64_t>{2, 7, arch.layers[0].hidden})) << dict;
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
    EXPECT_EQ(model_cost(arch, tiny_options()).total_params, m->num_parameters());
  }
  // n = 1: one attention head of size h and one convolution head of size h -> SelfOutput 2h -> h.
  FlexModel one(arch_from(R"({"l":1,"h":[16],"n":[1],"o":["c"],"f":[[24]],"p":[5]})"), tiny_options());
  EXPECT_EQ(one->named_parameters()["bert.encoder.layer.0.attention.output.dense.weight"].sizes(),
            (std::vector<int64_t>{16, 32}));
}

TEST_F(ModelTest, ProjectionBetweenWidthsAndFfnStacks) {
  FlexModel m(arch_from(kFlexiBertMini), tiny_options());
  auto p = m->named_parameters();
  EXPECT_EQ(p["bert.encoder.layer.1.proj_head.weight"].sizes(), (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(p.find("bert.encoder.layer.0.proj_head.weight"), nullptr);
  EXPECT_EQ(p.find("bert.encoder.layer.3.proj_head.weight"), nullptr);
  EXPECT_EQ(p["bert.encoder.layer.0.intermediate.dense_2.weight"].sizes(), (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(p["bert.encoder.layer.0.output.dense.weight"].sizes(), (std::vector<int64_t>{256, 512}));
  EXPECT_EQ(p["cls.predictions.decoder.weight"].sizes(), (std::vector<int64_t>{40, 128}));
}

TEST_F(ModelTest, HeadsAndLosses) {
  auto arch = testing::standard_arch("sa", "sdp");
  auto [ids, mask] = tiny_batch();
  {
    FlexModel m(arch, tiny_options(HeadType::kSequence));
    m->eval();
    EXPECT_EQ(m->forward(ids, mask).logits.sizes(), (std::vector<int64_t>{2, 3}));
    auto loss = m->loss(ids, mask, torch::tensor({0, 2}));
    EXPECT_TRUE(std::isfinite(loss.item<double>()));
    auto logits = m->forward(ids, mask).logits;
    EXPECT_NEAR(loss.item<double>(), torch::cross_entropy_loss(logits, torch::tensor({0, 2})).item<double>(), 1e-6);
  }
  {
    ModelOptions o = tiny_options(HeadType::kSequence);
    o.num_labels = 1;  // regression: MSE
    FlexModel m(arch, o);
    m->eval();
    auto target = torch::tensor({0.5f, -1.0f});
    auto pred = m->forward(ids, mask).logits.squeeze(-1);
    EXPECT_NEAR(m->loss(ids, mask, target).item<double>(), (pred - target).pow(2).mean().item<double>(), 1e-6);
  }
  {
    FlexModel m(arch, tiny_options(HeadType::kToken));
    m->eval();
    EXPECT_EQ(m->forward(ids, mask).logits.sizes(), (std::vector<int64_t>{2, 7, 3}));
    auto labels = ids.remainder(3).masked_fill(mask == 0, -100);
    EXPECT_TRUE(std::isfinite(m->loss(ids, mask, labels).item<double>()));
  }
  {
    // MLM: the head runs on labelled positions only; same loss as over the full logits.
    FlexModel m(arch, tiny_options(HeadType::kMlm));
    m->eval();
    auto labels = torch::full_like(ids, -100);
    labels.index_put_({0, 1}, 7);
    labels.index_put_({1, 3}, 9);
    auto logits = m->forward(ids, mask).logits;
    auto full = torch::cross_entropy_loss(logits.reshape({-1, 40}), labels.reshape({-1}), {}, at::Reduction::Mean, -100);
    EXPECT_NEAR(m->loss(ids, mask, labels).item<double>(), full.item<double>(), 1e-5);
  }
}

TEST_F(ModelTest, ValidationMessagesAreLocated) {
  auto expect_error = [](const std::string& dict, const ModelOptions& o, const std::string& message) {
    try {
      validate_architecture(arch_from(dict), o, "arch.json");
      FAIL() << "expected: " << message;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  };
  const ModelOptions o = tiny_options();
  expect_error(R"({"l":1,"h":[16],"n":[2],"o":["zz"],"f":[[8]],"p":["sdp"]})", o,
               "arch.json: error: o[0]: unknown operation type 'zz' (registered: c, l, sa)");
  expect_error(R"({"l":1,"h":[16],"n":[2],"o":["l"],"f":[[8]],"p":["sdp"]})", o,
               "arch.json: error: p[0]: invalid parameter 'sdp' for operation 'l' (allowed: dft, dct)");
  expect_error(R"({"l":1,"h":[16],"n":[3],"o":["sa"],"f":[[8]],"p":["sdp"]})", o,
               "arch.json: error: n[0]: 3 heads do not divide the hidden size 16");
  expect_error(R"({"l":1,"h":[16],"f":[[8]],"o":[["sa_sdp_8","c_4_8"]]})", o,
               "arch.json: error: o[0][1]: invalid parameter '4' for operation 'c' (allowed: an odd kernel size >= 3 such as 5, 9 or 13)");
  // With the source node, errors carry line and column.
  const ConfigNode node = ConfigNode::load_string(
      "{\"l\": 2, \"h\": [16, 16], \"n\": [2, 2], \"f\": [[8], [8]], \"p\": [\"sdp\", 7],\n"
      " \"o\": [\"sa\", \"zz\"]}",
      "arch.json");
  try {
    validate_architecture(architecture_from_config(node), o, "arch.json", &node);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "arch.json:2:14: error: o[1]: unknown operation type 'zz' (registered: c, l, sa)");
  }
}

}  // namespace
}  // namespace flexnas::models
