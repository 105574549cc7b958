// ELECTRA (models/electra.h): the generator's model dict, the shared embeddings, the discriminator's
// labels, inverse-CDF sampling, seeded noise, and micro-batches giving the whole batch's gradients.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/error.h"
#include "models/electra.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {

using testing::arch_from;

class ElectraTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

ElectraModel tiny_electra(const Architecture& arch, double size = 0.5) {
  torch::manual_seed(3);
  FlexModel disc(arch, testing::tiny_options());
  ElectraOptions o;
  o.generator_size = size;
  return ElectraModel(disc, o);
}

TEST_F(ElectraTest, GeneratorScalesWidthsHeadsAndFfnKeepingHeadsDividingWidths) {
  // BERT-Mini at ELECTRA's 1/4: 4 heads of 64 -> 1 head of 64; FFN 1024 -> 256.
  const Architecture mini = arch_from(
      R"({"l":2,"h":[256,256],"n":[4,4],"o":["sa","l"],"f":[[1024],[1024,512]],"p":["sdp","dct"]})");
  const Architecture g = generator_architecture(mini, 0.25);
  ASSERT_EQ(g.layers.size(), 2u);  // same depth, same operations
  EXPECT_EQ(g.layers[0].hidden, 64);
  EXPECT_EQ(g.layers[0].heads, 1);
  EXPECT_EQ(g.layers[0].ffn, (std::vector<int64_t>{256}));
  EXPECT_EQ(g.layers[1].op, "l");
  EXPECT_EQ(g.layers[1].param, "dct");
  EXPECT_EQ(g.layers[1].ffn, (std::vector<int64_t>{256, 128}));
  const Architecture half = generator_architecture(mini, 0.5);
  EXPECT_EQ(half.layers[0].hidden, 128);
  EXPECT_EQ(half.layers[0].heads, 2);
  EXPECT_EQ(generator_architecture(mini, 1.0), mini);  // size 1: the discriminator's own dict
  // Widths that do not divide: the multiple of the (rounded) head count nearest to h x size.
  const Architecture odd = arch_from(R"({"l":1,"h":[120],"n":[6],"o":["sa"],"f":[[100]],"p":["sdp"]})");
  EXPECT_EQ(generator_architecture(odd, 0.5).layers[0].heads, 3);
  EXPECT_EQ(generator_architecture(odd, 0.5).layers[0].hidden, 60);
  EXPECT_EQ(generator_architecture(odd, 0.35).layers[0].heads, 2);    // round(2.1)
  EXPECT_EQ(generator_architecture(odd, 0.35).layers[0].hidden, 42);  // 2 x round(21)
  EXPECT_EQ(generator_architecture(odd, 0.35).layers[0].ffn, (std::vector<int64_t>{35}));
  EXPECT_EQ(generator_architecture(odd, 0.01).layers[0].heads, 1);   // at least one head
  EXPECT_EQ(generator_architecture(odd, 0.01).layers[0].hidden, 1);  // of at least one dimension
  for (double size = 0.05; size <= 1.0; size += 0.05) {
    const Architecture s = generator_architecture(odd, size);
    EXPECT_EQ(s.layers[0].hidden % s.layers[0].heads, 0) << size;
    EXPECT_NO_THROW(validate_architecture(s, testing::tiny_options())) << size;
  }
  // Hetero: the first heads kept with their dimensions, h and FFN scaled.
  const Architecture hetero = arch_from(R"({"l":1,"h":[64],"f":[[128]],"o":[["sa_sdp_16","l_dft_16","c_3_16","sa_wma_16"]]})");
  const Architecture gh = generator_architecture(hetero, 0.5);
  ASSERT_EQ(gh.layers[0].head_list.size(), 2u);
  EXPECT_EQ(gh.layers[0].head_list[1].to_string(), "l_dft_16");
  EXPECT_EQ(gh.layers[0].hidden, 32);
  EXPECT_EQ(gh.layers[0].ffn, (std::vector<int64_t>{64}));
  EXPECT_NO_THROW(validate_architecture(gh, testing::tiny_options()));
}

TEST_F(ElectraTest, EmbeddingsAreSharedAndProjectedToTheGeneratorsWidth) {
  const Architecture arch = arch_from(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"]})");
  ElectraModel m = tiny_electra(arch, 0.5);
  const auto disc_word = m->discriminator()->named_parameters()["bert.embeddings.word_embeddings.weight"];
  // The very tensor, not a copy.
  EXPECT_EQ(m->shared_word_embeddings().unsafeGetTensorImpl(), disc_word.unsafeGetTensorImpl());
  EXPECT_EQ(m->shared_word_embeddings().data_ptr(), disc_word.data_ptr());
  const auto params = m->named_parameters();
  ASSERT_TRUE(params.contains("embeddings_project.weight"));  // 16 -> 8
  EXPECT_EQ(params["embeddings_project.weight"].sizes(), (torch::IntArrayRef{8, 16}));
  EXPECT_EQ(params["generator_predictions.dense.weight"].sizes(), (torch::IntArrayRef{16, 8}));  // back to the embedding width
  EXPECT_EQ(params["discriminator_predictions.dense.weight"].sizes(), (torch::IntArrayRef{16, 16}));
  EXPECT_EQ(params["discriminator_predictions.dense_prediction.weight"].sizes(), (torch::IntArrayRef{1, 16}));
  // The generator's own embedding block is frozen and not stored; its encoder is.
  EXPECT_FALSE(params["generator.bert.embeddings.word_embeddings.weight"].requires_grad());
  bool stored_embedding = false, stored_encoder = false;
  for (const auto& [name, t] : m->generator_tensors()) {
    stored_embedding |= name.find("generator.bert.embeddings.") == 0;
    stored_encoder |= name.find("generator.bert.encoder.") == 0;
  }
  EXPECT_FALSE(stored_embedding);
  EXPECT_TRUE(stored_encoder);
  // The generator's loss alone reaches the shared matrix through both its input and its tied output.
  auto [ids, mask] = testing::tiny_batch();
  const auto picked = torch::tensor({1L, 3L, 9L});
  const auto logits = m->generator_logits(ids, mask, picked);
  EXPECT_EQ(logits.sizes(), (torch::IntArrayRef{3, 40}));
  torch::cross_entropy_loss(logits, torch::tensor({5L, 6L, 7L})).backward();
  ASSERT_TRUE(disc_word.grad().defined());
  EXPECT_GT(disc_word.grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(params["generator.bert.embeddings.word_embeddings.weight"].grad().defined());
  // Same first width: no projection.
  const Architecture narrow_first = arch_from(R"({"l":1,"h":[8],"n":[1],"o":["sa"],"f":[[8]],"p":["sdp"]})");
  EXPECT_FALSE(tiny_electra(narrow_first, 1.0)->named_parameters().contains("embeddings_project.weight"));
}

TEST_F(ElectraTest, SampledTokenEqualToTheOriginalCountsAsOriginal) {
  const Architecture arch = arch_from(R"({"l":1,"h":[16],"n":[2],"o":["sa"],"f":[[32]],"p":["sdp"]})");
  ElectraModel m = tiny_electra(arch);
  m->eval();
  // Every token is 7; three positions masked ([MASK] = 4) with label 7.
  auto ids = torch::full({2, 6}, 7L);
  auto labels = torch::full({2, 6}, -100L);
  for (auto [r, c] : {std::pair{0, 1}, {0, 4}, {1, 2}}) {
    ids.index_put_({r, c}, 4);
    labels.index_put_({r, c}, 7);
  }
  const auto mask = torch::ones({2, 6}, torch::kLong);
  const auto uniforms = sampling_uniforms(1, 0, 0, 2, 6);
  auto bias = m->named_parameters()["generator_predictions.bias"];
  torch::NoGradGuard no_grad;
  bias.fill_(0);
  bias[7] = 1e4;  // the generator is sure of the original: every sample equals it
  ElectraStats s = m->forward(ids, mask, labels, uniforms);
  EXPECT_EQ(s.masked, 3);
  EXPECT_EQ(s.tokens, 12);
  EXPECT_EQ(s.replaced, 0);  // label 0 everywhere
  bias[7] = 0;
  bias[9] = 1e4;  // now every sample differs from the original
  s = m->forward(ids, mask, labels, uniforms);
  EXPECT_EQ(s.replaced, 3);
  // Padding is never judged.
  auto padded = mask.clone();
  padded.index_put_({1, torch::indexing::Slice(3, torch::indexing::None)}, 0);
  s = m->forward(ids, padded, labels, uniforms);
  EXPECT_EQ(s.tokens, 9);
  // The loss is the generator's MLM loss plus the weighted BCE.
  EXPECT_NEAR(s.loss.item<double>(), s.generator_loss + 50.0 * s.discriminator_loss, 1e-3);
  EXPECT_NEAR(s.generator_term.item<double>(), s.generator_loss, 1e-9);
}

TEST_F(ElectraTest, FunnelPooledModelsTrainWithTheirDecodersWidth) {
  // Widths change at the pooling layer: generator and discriminator heads read the decoder's width.
  const Architecture arch = arch_from(
      R"({"l":3,"h":[16,16,32],"n":[2,2,2],"o":["sa","sa","sa"],"f":[[32],[32],[32]],"p":["sdp","sdp","sdp"],)"
      R"("pool":{"stride":[1,1,2]}})");
  ElectraModel m = tiny_electra(arch);
  auto [ids, mask] = testing::tiny_batch(40, 9, 6);
  auto labels = torch::full({2, 9}, -100L);
  labels.index_put_({0, 3}, 5);
  labels.index_put_({1, 2}, 6);
  ElectraStats s = m->forward(ids, mask, labels, sampling_uniforms(1, 0, 0, 2, 9));
  s.loss.backward();
  EXPECT_TRUE(std::isfinite(s.loss.item<double>()));
  EXPECT_EQ(s.tokens, 9 + 6);
}

TEST_F(ElectraTest, InverseCdfSamplingFollowsTheSoftmax) {
  const auto logits = torch::log(torch::tensor({{0.2, 0.5, 0.3}}, torch::kFloat)).expand({5, 3});
  const auto u = torch::tensor({0.1f, 0.2f, 0.69f, 0.71f, 0.9999f});
  const auto s = ElectraModelImpl::sample(logits, u);
  EXPECT_EQ(s.dtype(), torch::kLong);
  EXPECT_TRUE(torch::equal(s, torch::tensor({0L, 1L, 1L, 2L, 2L}))) << s;
  // Frequencies of 20,000 draws against the probabilities.
  const auto many = ElectraModelImpl::sample(logits.narrow(0, 0, 1).expand({20000, 3}), torch::rand({20000}));
  for (int64_t k = 0; k < 3; ++k)
    EXPECT_NEAR((many == k).to(torch::kFloat).mean().item<double>(), (std::vector<double>{0.2, 0.5, 0.3}[size_t(k)]), 0.015);
  // No gradient flows through a sample.
  auto x = torch::zeros({1, 3}, torch::requires_grad());
  EXPECT_FALSE(ElectraModelImpl::sample(x, torch::tensor({0.5f})).requires_grad());
}

TEST_F(ElectraTest, SamplingNoiseIsAPureFunctionOfSeedStreamAndIndex) {
  torch::manual_seed(1);
  const auto a = sampling_uniforms(11, 0, 5, 3, 4);
  torch::rand({100});  // the global stream does not matter
  EXPECT_TRUE(torch::equal(a, sampling_uniforms(11, 0, 5, 3, 4)));
  EXPECT_FALSE(torch::equal(a, sampling_uniforms(11, 0, 6, 3, 4)));
  EXPECT_FALSE(torch::equal(a, sampling_uniforms(12, 0, 5, 3, 4)));
  EXPECT_FALSE(torch::equal(a, sampling_uniforms(11, 1, 5, 3, 4)));
  EXPECT_GE(a.min().item<float>(), 0.0f);
  EXPECT_LT(a.max().item<float>(), 1.0f);
}

TEST_F(ElectraTest, MicroBatchesGiveTheWholeBatchGradient) {
  const Architecture arch = testing::standard_arch("sa", "sdp");
  auto [ids0, mask] = testing::tiny_batch();
  auto ids = torch::cat({ids0, ids0.flip({1})});  // 4 rows, one with padding
  auto attention = torch::cat({mask, mask});
  auto labels = torch::full_like(ids, -100);
  for (auto [r, c] : {std::pair{0, 1}, {0, 5}, {1, 2}, {2, 0}, {3, 3}, {2, 6}}) labels.index_put_({r, c}, ids[r][c]);
  const auto uniforms = sampling_uniforms(2, 0, 0, 4, 7);
  auto gradients = [&](int64_t micro) {
    ElectraModel m = tiny_electra(arch);
    m->eval();  // no dropout: the same function whatever the split
    const ElectraStats s = electra_accumulate_gradients(*m, ids, attention, labels, uniforms, micro, Precision::kFp32);
    std::vector<torch::Tensor> g;
    for (const auto& p : m->parameters())
      if (p.requires_grad()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return std::make_pair(s, g);
  };
  const auto [whole_stats, whole] = gradients(1);
  EXPECT_EQ(whole_stats.masked, 6);
  EXPECT_EQ(whole_stats.tokens, 4 * 7 - 2 * 3);
  for (int64_t micro : {2, 4}) {
    const auto [stats, parts] = gradients(micro);
    EXPECT_NEAR(stats.generator_loss, whole_stats.generator_loss, 1e-5) << micro;
    EXPECT_NEAR(stats.discriminator_loss, whole_stats.discriminator_loss, 1e-5) << micro;
    EXPECT_EQ(stats.replaced, whole_stats.replaced) << micro;  // the same samples
    for (size_t i = 0; i < whole.size(); ++i)
      EXPECT_TRUE(torch::allclose(parts[i], whole[i], 1e-4, 1e-6)) << "micro " << micro << " parameter " << i;
  }
}

TEST_F(ElectraTest, GeneratorSizeTheOperationsRejectIsALocatedFlagError) {
  // The derivation keeps heads dividing widths, so a derived dict fails only with the options: the
  // message then names the flag, the size and the derived dict.
  const Architecture arch = testing::standard_arch("c", "3", 2);
  EXPECT_NO_THROW(checked_generator_architecture(arch, testing::tiny_options(), 0.5));
  ModelOptions bad_options = testing::tiny_options();
  bad_options.vocab_size = 0;  // invalid options make every derived dict fail validation
  try {
    checked_generator_architecture(arch, bad_options, 0.25);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("error: --generator-size: the generator derived at size 0.25 ({\"l\":2"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flexnas::models
