// FlexModel: parameter counts against the reference, the fixed defects (28, 33, 34, 35), heads,
// losses and validation messages.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/config_node.h"
#include "design_space/error.h"
#include "design_space/design_space.h"
#include "models/attention_common.h"
#include "models/checkpoint.h"
#include "models/op_catalog.h"
#include "models/op_registry.h"
#include "models/precision.h"
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

// The sequence head reads the mean of the last layer's valid tokens (the default) or the first
// token; either way a sequence scores the same alone and padded in a batch. config.json records the
// choice; a config without the key (written before it existed) means the first token.
TEST_F(ModelTest, SequenceHeadPoolsTheMeanOfValidTokensOrTheFirst) {
  auto arch = testing::standard_arch("sa", "sdp");
  auto [ids, mask] = tiny_batch();
  EXPECT_EQ(ModelOptions{}.classifier_pooling, ClassifierPooling::kMean);
  for (ClassifierPooling pooling : {ClassifierPooling::kMean, ClassifierPooling::kFirst}) {
    ModelOptions o = tiny_options(HeadType::kSequence);
    o.classifier_pooling = pooling;
    FlexModel m(arch, o);
    m->eval();
    torch::NoGradGuard no_grad;
    auto hidden = m->encode(ids, mask);  // [2,7,h]
    auto valid = mask.to(torch::kFloat).unsqueeze(-1);
    auto summary = pooling == ClassifierPooling::kMean ? (hidden * valid).sum(1) / valid.sum(1) : hidden.select(1, 0);
    auto pooler = m->named_parameters();
    auto expected = torch::linear(torch::tanh(torch::linear(summary, pooler["bert.pooler.dense.weight"],
                                                            pooler["bert.pooler.dense.bias"])),
                                  pooler["classifier.weight"], pooler["classifier.bias"]);
    auto logits = m->forward(ids, mask).logits;
    EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-6)) << enum_name(classifier_pooling_names(), pooling);
    auto alone = m->forward(ids.narrow(0, 1, 1).narrow(1, 0, 4), mask.narrow(0, 1, 1).narrow(1, 0, 4)).logits;
    EXPECT_TRUE(torch::allclose(alone, logits.narrow(0, 1, 1), 1e-4, 1e-5)) << enum_name(classifier_pooling_names(), pooling);
    // The loss is the cross-entropy of those logits.
    EXPECT_NEAR(m->loss(ids, mask, torch::tensor({0, 2})).item<double>(),
                torch::cross_entropy_loss(logits, torch::tensor({0, 2})).item<double>(), 1e-6);
  }
  // The two poolings give different logits on the same weights.
  ModelOptions first = tiny_options(HeadType::kSequence);
  first.classifier_pooling = ClassifierPooling::kFirst;
  torch::manual_seed(3);
  FlexModel a(arch, first);
  torch::manual_seed(3);
  FlexModel b(arch, tiny_options(HeadType::kSequence));
  a->eval();
  b->eval();
  EXPECT_FALSE(torch::allclose(a->forward(ids, mask).logits, b->forward(ids, mask).logits));

  // config.json: written, read back, missing = first, a bad value is located and lists the choices.
  const auto json = tiny_options(HeadType::kSequence).to_json();
  EXPECT_EQ(json["classifier_pooling"], "mean");
  EXPECT_EQ(ModelOptions::from_config(ConfigNode::load_string(json.dump(), "config.json")).classifier_pooling,
            ClassifierPooling::kMean);
  auto without = json;
  without.erase("classifier_pooling");
  EXPECT_EQ(ModelOptions::from_config(ConfigNode::load_string(without.dump(), "config.json")).classifier_pooling,
            ClassifierPooling::kFirst);
  auto bad = json;
  bad["classifier_pooling"] = "max";
  try {
    ModelOptions::from_config(ConfigNode::load_string(bad.dump(), "config.json"));
    FAIL() << "classifier_pooling: max accepted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("config.json"), std::string::npos) << what;
    EXPECT_NE(what.find("classifier_pooling"), std::string::npos) << what;
    EXPECT_NE(what.find("'max'"), std::string::npos) << what;
    EXPECT_NE(what.find("mean, first"), std::string::npos) << what;
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
               "arch.json: error: o[0]: unknown operation type 'zz' (registered: ak, c, l, sa)");
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
    EXPECT_EQ(std::string(e.what()), "arch.json:2:14: error: o[1]: unknown operation type 'zz' (registered: ak, c, l, sa)");
  }
}

// ---------------------------------------------------------------------------------------------
// Operation "ak" (attention kernels, Chang et al. 2021; models/ops/attention_kernel.cpp).

std::string ak_check(const std::string& param) { return op_registry().find("ak")->check_param(param); }

TEST(AttentionKernel, CheckerSaysWhatIsAllowedForEveryViolation) {
  for (const char* ok : {"qk", "convfixed:4", "qk+convq:9", "qk+convfixed+convq+convk:8", "qk+vconv:4", "convk+qkconv:1",
                         "qk+convfixed+convq+convk+vconv+qkconv:511"})
    EXPECT_EQ(ak_check(ok), "") << ok;
  const std::string grammar =
      "<components>[:<N>] with components qk, convfixed, convq, convk, vconv, qkconv joined by '+' in that order, e.g. qk+convq:9";
  EXPECT_EQ(ak_check("convq+qk:9"),
            "components in the canonical order qk, convfixed, convq, convk, vconv, qkconv ('qk' comes before 'convq')");
  EXPECT_EQ(ak_check("qk+convx:9"), "components qk, convfixed, convq, convk, vconv, qkconv ('convx' is not one); " + grammar);
  EXPECT_EQ(ak_check("qk+qk"), "each component at most once ('qk' appears twice); " + grammar);
  EXPECT_EQ(ak_check("qk++convq:9"), "components joined by single '+' signs: " + grammar);
  EXPECT_EQ(ak_check(""), "components joined by single '+' signs: " + grammar);
  EXPECT_EQ(ak_check("qk_convq:9"), "no '_' (it separates the fields of hetero head strings); " + grammar);
  EXPECT_EQ(ak_check("qk+convq"),
            "a window ':N' (N = 1..511) after 'qk+convq' (every component but qk uses relative distances), e.g. qk+convq:4");
  EXPECT_EQ(ak_check("qk:4"), "no window after qk alone (it uses no relative distances): write qk");
  for (const char* bad : {"convq:0", "convq:512", "convq:09", "convq:", "convq:x", "convq:-1", "convq:1000"})
    EXPECT_EQ(ak_check(bad), "a window N from 1 to 511 without leading zeros after ':', got '" +
                                 std::string(bad).substr(6) + "'")
        << bad;
  EXPECT_EQ(ak_check("vconv:4"),
            "at least one attention kernel among qk, convfixed, convq, convk (vconv and qkconv only convolve values or "
            "queries and keys), e.g. qk+vconv:4");
  EXPECT_EQ(ak_check("convfixed+qkconv:4"),
            "qkconv only with a kernel that reads queries or keys (qk, convq or convk), e.g. convq+qkconv:4");
}

TEST(AttentionKernel, WindowBeyondTheLongestSequenceIsALocatedError) {
  const ModelOptions o = tiny_options();  // max_positions 16: windows up to 15
  EXPECT_NO_THROW(validate_architecture(arch_from(R"({"l":1,"h":[16],"n":[2],"o":["ak"],"f":[[8]],"p":["convq:15"]})"), o));
  try {
    validate_architecture(arch_from(R"({"l":1,"h":[16],"n":[2],"o":["ak"],"f":[[8]],"p":["qk+convq:16"]})"), o, "arch.json");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "arch.json: error: n[0]: the ak window 16 of 'qk+convq:16' exceeds max_positions - 1 = 15 (no longer distance occurs)");
  }
  try {
    validate_architecture(arch_from(R"({"l":1,"h":[16],"n":[2],"o":["ak"],"f":[[8]],"p":["convk+convq:4"]})"), o, "arch.json");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "arch.json: error: p[0]: invalid parameter 'convk+convq:4' for operation 'ak' (allowed: components in the "
              "canonical order qk, convfixed, convq, convk, vconv, qkconv ('convq' comes before 'convk'))");
  }
  // Hetero heads: located at the head string (OpDefinition::check_head).
  try {
    validate_architecture(arch_from(R"({"l":1,"h":[16],"f":[[8]],"o":[["sa_sdp_8","ak_convq:16_8"]]})"), o, "arch.json");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "arch.json: error: o[0][1]: the ak window 16 of 'convq:16' exceeds max_positions - 1 = 15 (no longer distance occurs)");
  }
}

/// The standard core of `param` (h = 8, 2 heads of d = 4), eval mode, every parameter drawn at random.
std::shared_ptr<AttentionCore> ak_core(const std::string& param, int64_t heads = 2) {
  CoreConfig c;
  c.hidden = 8;
  c.heads = heads;
  c.param = param;
  c.max_positions = 16;
  auto core = op_registry().find("ak")->build_core(c);
  core->eval();
  torch::NoGradGuard no_grad;
  for (auto& p : core->parameters()) p.copy_(torch::randn_like(p) * 0.5);
  return core;
}

AttentionInputs full_inputs(int64_t B, int64_t T) {
  AttentionInputs in;
  in.valid = torch::ones({B, T});
  in.mask_add = torch::zeros({B, 1, 1, T});
  return in;
}

/// Every ak component by plain loops in float64: depthwise convolutions of the first head's q/k/v
/// channels, the four score terms with clipped distances, softmax, @ v. x: [T, 8] -> [T, 8].
torch::Tensor ak_brute_force(const std::shared_ptr<AttentionCore>& core, const torch::Tensor& x, int64_t N, int64_t heads) {
  auto P = core->named_parameters();
  auto get = [&](const std::string& name) { return P.contains(name) ? P[name].to(torch::kDouble) : torch::Tensor(); };
  const int64_t T = x.size(0), h = 8, d = h / heads, C = std::max<int64_t>(heads / 2, 1) * d;
  auto xd = x.to(torch::kDouble);
  auto project = [&](const std::string& name) {
    auto w = get(name + ".weight");
    if (!w.defined()) return torch::Tensor();
    auto y = torch::matmul(xd, w.t()) + get(name + ".bias");
    auto conv = get(name + "_conv.weight");  // [C,1,2N+1]
    if (!conv.defined()) return y;
    auto out = y.clone();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t ch = 0; ch < C; ++ch) {
        double acc = 0;
        for (int64_t u = -N; u <= N; ++u)
          if (t + u >= 0 && t + u < T) acc += conv[ch][0][u + N].item<double>() * y[t + u][ch].item<double>();
        out[t][ch] = acc;
      }
    return out;
  };
  auto q = project("query"), k = project("key"), v = project("value");
  auto beta = get("convfixed"), r = get("convq"), s = get("convk");
  auto clip = [N](int64_t x) { return std::min(std::max(x, -N), N) + N; };
  auto out = torch::zeros({T, h}, torch::kDouble);
  for (int64_t hh = 0; hh < heads; ++hh) {
    auto scores = torch::zeros({T, T}, torch::kDouble);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) {
        double content = 0;
        for (int64_t c = 0; c < d; ++c) {
          if (q.defined() && k.defined()) content += q[i][hh * d + c].item<double>() * k[j][hh * d + c].item<double>();
          if (r.defined()) content += q[i][hh * d + c].item<double>() * r[c][clip(j - i)].item<double>();
          if (s.defined()) content += k[j][hh * d + c].item<double>() * s[c][clip(i - j)].item<double>();
        }
        double score = content / std::sqrt(double(d));
        if (beta.defined()) score += beta[hh][clip(j - i)].item<double>();
        scores[i][j] = score;
      }
    auto probs = torch::softmax(scores, -1);
    out.narrow(1, hh * d, d).copy_(torch::matmul(probs, v.narrow(1, hh * d, d)));
  }
  return out;
}

TEST(AttentionKernel, EveryComponentEqualsABruteForceLoop) {
  torch::manual_seed(5);
  // Windows smaller than T - 1 = 5 exercise clipping (distances beyond N share the edge column).
  for (const std::string param : {"qk", "convfixed:1", "convq:2", "convk:2", "qk+convq:1", "qk+convfixed+convq+convk:2",
                                  "convfixed+vconv:1", "qk+qkconv:2", "convq+qkconv:1", "qk+convfixed+convq+convk+vconv+qkconv:2"}) {
    const int64_t N = param.find(':') == std::string::npos ? 0 : std::stoll(param.substr(param.find(':') + 1));
    for (int64_t heads : {2, 1}) {
      auto core = ak_core(param, heads);
      auto x = torch::randn({1, 6, 8});
      torch::NoGradGuard no_grad;
      auto y = core->forward(x, full_inputs(1, 6))[0].to(torch::kDouble);
      auto expected = ak_brute_force(core, x[0], N, heads);
      EXPECT_TRUE(torch::allclose(y, expected, 1e-5, 1e-6))
          << param << " heads " << heads << ": " << (y - expected).abs().max().item<double>();
    }
  }
}

TEST(AttentionKernel, ConvfixedAloneIsTheSoftmaxOfBetaOverClippedDistances) {
  auto core = ak_core("convfixed:1");
  torch::NoGradGuard no_grad;
  auto P = core->named_parameters();
  P["convfixed"].copy_(torch::tensor({{0.0f, 1.0f, 2.0f}, {3.0f, 0.0f, 0.0f}}));  // [heads, 2N+1]: distances -1, 0, +1
  // Values = one-hot tokens: the output is the attention matrix itself. Take x = I (T = h = 8) and
  // the value projection = identity.
  P["value.weight"].copy_(torch::eye(8));
  P["value.bias"].zero_();
  auto y = core->forward(torch::eye(8).unsqueeze(0), full_inputs(1, 8))[0];  // [8, 8]: head 0 = columns 0..3
  // Head 0, query 2: key 1 (distance -1) weight e^0, key 2 e^1, keys 3.. (distance >= 1, clipped) e^2;
  // keys 0 (distance -2, clipped to -1) e^0. Values one-hot: column c of head 0 is token c (c < 4).
  const double z = 2 * std::exp(0.0) + std::exp(1.0) + 5 * std::exp(2.0);
  EXPECT_NEAR(y[2][0].item<double>(), 1.0 / z, 1e-6);
  EXPECT_NEAR(y[2][1].item<double>(), 1.0 / z, 1e-6);
  EXPECT_NEAR(y[2][2].item<double>(), std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(y[2][3].item<double>(), std::exp(2.0) / z, 1e-6);
  // Head 1: distances <= -1 weigh e^3, the rest e^0; query 7 sees 7 keys behind it.
  const double z1 = 7 * std::exp(3.0) + 1;
  EXPECT_NEAR(y[7][4].item<double>(), std::exp(3.0) / z1, 1e-6);  // token 4 through head 1's channel 0
}

TEST(AttentionKernel, PaddingDoesNotLeakIntoConvolutionsOrKernels) {
  auto core = ak_core("qk+convfixed+convq+convk+vconv+qkconv:2");
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 7, 8});
  AttentionInputs in = full_inputs(1, 7);
  in.valid.narrow(1, 4, 3).zero_();
  in.mask_add.narrow(3, 4, 3).fill_(-10000.0);
  auto padded = core->forward(x, in).narrow(1, 0, 4);
  auto x2 = x.clone();
  x2.narrow(1, 4, 3).normal_(0, 10);  // other padding
  auto padded2 = core->forward(x2, in).narrow(1, 0, 4);
  auto alone = core->forward(x.narrow(1, 0, 4), full_inputs(1, 4));
  EXPECT_TRUE(torch::allclose(padded, alone, 1e-5, 1e-6)) << (padded - alone).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(padded2, alone, 1e-5, 1e-6));
}

TEST(AttentionKernel, TensorNamesShapesAndUnusedProjectionsAbsent) {
  const ModelOptions o = tiny_options();
  FlexModel m(arch_from(R"({"l":2,"h":[16,16],"n":[4,2],"o":["ak","ak"],"f":[[8],[8]],"p":["convfixed+vconv:3","qk+convk+qkconv:2"]})"), o);
  auto P = m->named_parameters();
  const std::string s0 = "bert.encoder.layer.0.attention.self.", s1 = "bert.encoder.layer.1.attention.self.";
  EXPECT_FALSE(P.contains(s0 + "query.weight"));
  EXPECT_FALSE(P.contains(s0 + "key.weight"));
  EXPECT_FALSE(P.contains(s0 + "distance_embedding.weight"));
  EXPECT_EQ(P[s0 + "convfixed"].sizes(), (std::vector<int64_t>{4, 7}));
  EXPECT_TRUE(torch::equal(P[s0 + "convfixed"], torch::zeros({4, 7})));  // zero start: uniform attention
  EXPECT_EQ(P[s0 + "value_conv.weight"].sizes(), (std::vector<int64_t>{8, 1, 7}));  // first 2 of 4 heads, d = 4
  EXPECT_EQ(P[s1 + "query.weight"].sizes(), (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(P[s1 + "convk"].sizes(), (std::vector<int64_t>{8, 5}));
  EXPECT_LE(P[s1 + "convk"].abs().max().item<double>(), 1.0 / std::sqrt(5.0));  // kaiming_uniform_(a = sqrt 5)
  EXPECT_EQ(P[s1 + "query_conv.weight"].sizes(), (std::vector<int64_t>{8, 1, 5}));  // 1 of 2 heads
  EXPECT_EQ(P[s1 + "key_conv.weight"].sizes(), (std::vector<int64_t>{8, 1, 5}));
  FlexModel h(arch_from(R"({"l":1,"h":[16],"f":[[8]],"o":[["ak_convfixed+convq+vconv:2_8","sa_sdp_8"]]})"), o);
  auto H = h->named_parameters();
  const std::string hp = "bert.encoder.layer.0.attention.self.heads.0.";
  EXPECT_EQ(H[hp + "convfixed"].sizes(), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(H[hp + "convq"].sizes(), (std::vector<int64_t>{8, 5}));
  EXPECT_EQ(H[hp + "value_conv.weight"].sizes(), (std::vector<int64_t>{8, 1, 5}));
  EXPECT_EQ(model_cost(h->architecture(), o, 7).total_params, h->num_parameters());
}

TEST(AttentionKernel, CheckpointRoundTripInBothFormats) {
  const std::string dir = ::testing::TempDir() + "/ak_ckpt";
  for (const char* dict : {R"({"l":2,"h":[16,24],"n":[2,2],"o":["ak","ak"],"f":[[8],[8]],"p":["qk+convfixed+convq+convk+vconv+qkconv:3","convq:2"]})",
                           R"({"l":1,"h":[16],"f":[[8]],"o":[["ak_qk+convk+qkconv:3_8","ak_convfixed:2_8"]]})"}) {
    torch::manual_seed(2);
    FlexModel m(arch_from(dict), tiny_options());
    m->eval();
    save_checkpoint(dir, *m);
    FlexModel back = load_checkpoint(dir);
    back->eval();
    EXPECT_EQ(back->architecture(), m->architecture());
    auto [ids, mask] = tiny_batch();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(m->forward(ids, mask).logits, back->forward(ids, mask).logits)) << dict;
  }
}

TEST(AttentionKernel, Fp32IslandsHoldUnderBf16InBothFormats) {
  const auto [ids, mask] = tiny_batch();
  for (const Architecture& arch : {testing::standard_arch("ak", "qk+convfixed+convq+convk+vconv+qkconv:3"),
                                   testing::hetero_arch("ak", "qk+convfixed+convq+convk+vconv+qkconv:3")}) {
    torch::manual_seed(3);
    FlexModel model(arch, tiny_options());
    model->eval();
    torch::NoGradGuard no_grad;
    const ModelOutput ref = model->forward(ids, mask);
    ModelOutput low;
    {
      AutocastScope autocast(Precision::kBf16, torch::kCPU);
      low = model->forward(ids, mask);
    }
    EXPECT_EQ(low.hidden.scalar_type(), torch::kFloat);
    EXPECT_LT((low.hidden - ref.hidden).abs().max().item<double>(), 0.1);
  }
}

TEST(AttentionKernel, DesignSpaceYamlAcceptsAkParameters) {
  const std::string yaml = R"(architecture:
  hidden_size: [16]
  num_heads: [2]
  encoder_layers: [2]
  operation_types: [sa, ak]
  number_of_feed-forward_stacks: [1]
  feed-forward_hidden: [32]
  operation_parameters:
    sa: [sdp]
    ak:
      - qk
      - qk+convq:9
      - qk+convfixed+convq+convk:4
)";
  const DesignSpace sp = parse_design_space(yaml, "ds.yaml", op_catalog());
  EXPECT_EQ(sp.op_params[1], (std::vector<std::string>{"qk", "qk+convq:9", "qk+convfixed+convq+convk:4"}));
  // Flow style too: ':' followed by a digit does not start a mapping.
  const DesignSpace flow = parse_design_space(
      std::string(yaml).replace(yaml.find("ak:\n"), std::string::npos, "ak: [qk, qk+convq:9, convfixed:4]\n"), "ds.yaml", op_catalog());
  EXPECT_EQ(flow.op_params[1], (std::vector<std::string>{"qk", "qk+convq:9", "convfixed:4"}));
  try {
    parse_design_space(std::string(yaml).replace(yaml.find("qk+convq:9"), 10, "convq+qk:9"), "ds.yaml", op_catalog());
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown parameter 'convq+qk:9' for operation type 'ak' (allowed: components in "
                                         "the canonical order"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flexnas::models
