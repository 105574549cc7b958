// Funnel-Transformer pooling (seed 003): the pooling maths, the "pool" model-dict key, the model
// with pooled layers and its up-sampling decoder.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "design_space/arch_graph.h"
#include "design_space/error.h"
#include "models/attention_common.h"
#include "models/checkpoint.h"
#include "models/flex_model.h"
#include "models/pooling.h"
#include "models/probe.h"
#include "test_util.h"

namespace flexnas::models {
namespace {

using testing::arch_from;
using testing::tiny_options;

// Three stacks of two standard layers; the second and third stacks pool by 2.
const char* kFunnel =
    R"({"l":6,"h":[16,16,16,16,24,24],"n":[2,2,2,2,2,2],"o":["sa","sa","sa","sa","sa","sa"],)"
    R"("f":[[32],[32],[32],[32],[32],[32]],"p":["sdp","sdp","wma","sdp","sdp","sdp"],)"
    R"("pool":{"stride":[1,1,2,1,2,1],"q_only":true,"separate_cls":true,"decoder":2}})";

std::string expect_config_error(const std::string& json) {
  try {
    arch_from(json);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << json;
  return "";
}

TEST(Pooling, MaskedMeanKeepsClsAloneAndIgnoresPadding) {
  // [CLS] t1 t2 t3 t4 t5 pad : windows {t1,t2} {t3,t4} {t5,pad}
  auto x = torch::arange(7 * 2, torch::kFloat).view({1, 7, 2});
  auto valid = torch::tensor({{1, 1, 1, 1, 1, 1, 0}}, torch::kFloat);
  auto pooled = pool_tokens(x, valid, 2, /*separate_cls=*/true);
  ASSERT_EQ(pooled.x.sizes(), (std::vector<int64_t>{1, 4, 2}));
  EXPECT_TRUE(torch::equal(pooled.x[0][0], x[0][0]));
  EXPECT_TRUE(torch::allclose(pooled.x[0][1], (x[0][1] + x[0][2]) / 2));
  EXPECT_TRUE(torch::allclose(pooled.x[0][3], x[0][5]));  // the padding is not averaged in
  EXPECT_TRUE(torch::equal(pooled.valid, torch::tensor({{1, 1, 1, 1}}, torch::kFloat)));
  // A window of padding only is padding.
  auto short_valid = torch::tensor({{1, 1, 1, 0, 0, 0, 0}}, torch::kFloat);
  auto p2 = pool_tokens(x, short_valid, 2, true);
  EXPECT_TRUE(torch::equal(p2.valid, torch::tensor({{1, 1, 0, 0}}, torch::kFloat)));
  // Without separate [CLS] the first window holds it.
  auto p3 = pool_tokens(x, valid, 3, false);
  ASSERT_EQ(p3.x.size(1), 3);
  EXPECT_TRUE(torch::allclose(p3.x[0][0], (x[0][0] + x[0][1] + x[0][2]) / 3));
  EXPECT_EQ(pooled_length(7, 2, true), 4);
  EXPECT_EQ(pooled_length(7, 3, false), 3);
  EXPECT_EQ(pooled_length(2, 2, true), 2);  // [CLS] and one token: nothing left to pool
}

TEST(Pooling, PositionsAndUpsamplingInvertAChainOfPoolings) {
  EXPECT_TRUE(torch::equal(pooled_positions(7, 2, true, torch::kCPU), torch::tensor({0, 1, 3, 5}, torch::kLong)));
  EXPECT_TRUE(torch::equal(pooled_positions(7, 2, false, torch::kCPU), torch::tensor({0, 2, 4, 6}, torch::kLong)));
  // Pool 11 tokens twice by 2 (with [CLS]); token t >= 1 up-samples from pooled token 1 + (t-1)/4.
  const int64_t T = 11;
  auto x = torch::randn({1, T, 3});
  auto valid = torch::ones({1, T});
  auto once = pool_tokens(x, valid, 2, true);
  auto twice = pool_tokens(once.x, once.valid, 2, true);
  auto up = upsample_tokens(twice.x, T, 4, true);
  ASSERT_EQ(up.sizes(), x.sizes());
  for (int64_t t = 0; t < T; ++t) {
    const int64_t src = t == 0 ? 0 : 1 + (t - 1) / 4;
    EXPECT_TRUE(torch::equal(up[0][t], twice.x[0][src])) << "token " << t;
  }
}

TEST(Pooling, RelativeScoresAtPositionsEqualABruteForceLoop) {
  torch::manual_seed(3);
  const int64_t P = 12, Tk = 7, d = 4;
  auto table = torch::randn({2 * P - 1, d});
  auto q = torch::randn({2, 4, d});
  auto q_pos = pooled_positions(Tk, 2, true, torch::kCPU);
  auto s = relative_key_scores_at(q, table, P, q_pos, Tk);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2, 4, Tk}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < Tk; ++j) {
      auto expected = (q.select(1, i) * table[q_pos[i].item<int64_t>() - j + P - 1]).sum(-1);
      EXPECT_TRUE(torch::allclose(s.select(1, i).select(1, j), expected, 1e-5, 1e-6));
    }
  // Positions 0..T-1 are the unpooled relative scores.
  auto q2 = torch::randn({2, Tk, d});
  EXPECT_TRUE(torch::allclose(relative_key_scores_at(q2, table, P, torch::arange(Tk), Tk),
                              relative_key_scores(q2, table, P), 1e-5, 1e-6));
}

TEST(PoolKey, RoundTripsAndNoPoolingIsTheModelWithoutTheKey) {
  Architecture arch = arch_from(kFunnel);
  ASSERT_TRUE(arch.pool.active());
  EXPECT_EQ(arch.pool.total_stride(), 4);
  EXPECT_EQ(arch.pool.first_pooling_layer(), 2u);
  EXPECT_EQ(arch_from(arch.to_canonical_string()), arch);
  // Defaults for omitted keys; every stride 1 = no key (same canonical text and hash).
  Architecture plain = arch_from(R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"]})");
  Architecture ones = arch_from(
      R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"],"pool":{"stride":[1,1]}})");
  EXPECT_EQ(ones, plain);
  EXPECT_EQ(ones.to_canonical_string(), plain.to_canonical_string());
  EXPECT_EQ(architecture_hash(ones), architecture_hash(plain));
  Architecture defaults = arch_from(
      R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"],"pool":{"stride":[1,2]}})");
  EXPECT_TRUE(defaults.pool.q_only);
  EXPECT_TRUE(defaults.pool.separate_cls);
  EXPECT_EQ(defaults.pool.decoder, 2);
  // The hetero format takes the key too.
  Architecture hetero = arch_from(
      R"({"l":2,"h":[16,16],"f":[[24],[20]],"o":[["sa_sdp_8","sa_wma_8"],["sa_sdp_8","l_dct_8"]],"pool":{"stride":[1,2]}})");
  EXPECT_TRUE(hetero.pool.active());
  EXPECT_EQ(arch_from(hetero.to_canonical_string()), hetero);
}

TEST(PoolKey, EveryChoiceHasItsOwnHash) {
  const Architecture base = arch_from(kFunnel);
  std::set<std::string> hashes{architecture_hash(base)};
  Architecture no_pool = base;
  no_pool.pool = PoolSpec{};
  hashes.insert(architecture_hash(no_pool));
  for (int variant = 0; variant < 5; ++variant) {
    Architecture a = base;
    if (variant == 0) a.pool.q_only = false;
    if (variant == 1) a.pool.separate_cls = false;
    if (variant == 2) a.pool.decoder = 1;
    if (variant == 3) a.pool.stride = {1, 1, 1, 2, 2, 1};  // pooled one layer later
    if (variant == 4) a.pool.stride = {1, 1, 4, 1, 1, 1};
    hashes.insert(architecture_hash(a));
  }
  EXPECT_EQ(hashes.size(), 7u);
}

TEST(PoolKey, BadValuesAreLocatedErrorsSayingWhatIsAllowed) {
  const std::string head = R"({"l":2,"h":[16,16],"n":[2,2],"o":["sa","sa"],"f":[[32],[32]],"p":["sdp","sdp"],"pool":)";
  EXPECT_NE(expect_config_error(head + R"({"stride":[2,1]}})").find("the first layer cannot pool"), std::string::npos);
  EXPECT_NE(expect_config_error(head + R"({"stride":[1,16]}})").find("pooling stride must be 1 (no pooling) .. 8, got 16"),
            std::string::npos);
  EXPECT_NE(expect_config_error(head + R"({"stride":[1,2,2]}})").find("expected 2 entries"), std::string::npos);
  EXPECT_NE(expect_config_error(head + R"({"stride":[1,0]}})").find("must be a positive integer"), std::string::npos);
  EXPECT_NE(expect_config_error(head + R"({"stride":[1,2],"decoder":20}})").find("decoder layers must be 0..12, got 20"),
            std::string::npos);
  EXPECT_NE(expect_config_error(head + R"({"stride":[1,2],"q_only":"maybe"}})").find("expected true or false"),
            std::string::npos);
  const std::string unknown = expect_config_error(head + R"({"stride":[1,2],"window":3}})");
  EXPECT_NE(unknown.find("window"), std::string::npos) << unknown;
  EXPECT_NE(expect_config_error(head + "[1,2]}").find("expected a map"), std::string::npos);
  // Pooling that folds the longest sequence into one token (max_positions 16 -> 15 tokens besides [CLS]).
  Architecture deep = arch_from(head + R"({"stride":[1,8]}})");
  deep.layers.push_back(deep.layers.back());
  deep.pool.stride.push_back(2);
  try {
    validate_architecture(deep, tiny_options(), "funnel.json");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("funnel.json"), std::string::npos) << text;
    EXPECT_NE(text.find("strides multiply to 16"), std::string::npos) << text;
  }
}

TEST(FunnelModel, ShapesParametersAndTheDecoderOnlyForTokenHeads) {
  torch::manual_seed(0);
  const Architecture arch = arch_from(kFunnel);
  auto [ids, mask] = testing::tiny_batch(40, 11, 6);
  for (HeadType head : {HeadType::kMlm, HeadType::kToken, HeadType::kSequence}) {
    const ModelOptions o = tiny_options(head);
    FlexModel model(arch, o);
    model->eval();
    EXPECT_EQ(model->num_parameters(), model_cost(arch, o).total_params) << head_type_name(head);
    auto out = model->forward(ids, mask);
    bool has_decoder = false;
    for (const auto& item : model->named_parameters())
      if (item.key().rfind("bert.decoder.", 0) == 0) has_decoder = true;
    if (head == HeadType::kSequence) {
      EXPECT_FALSE(has_decoder);
      EXPECT_EQ(out.hidden.size(1), 4);  // 11 -> 6 -> 4 tokens ([CLS] kept)
      EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, o.num_labels}));
    } else {
      EXPECT_TRUE(has_decoder);
      EXPECT_EQ(out.hidden.sizes(), (std::vector<int64_t>{2, 11, 16}));  // back to full length, decoder width
      EXPECT_EQ(out.logits.size(1), 11);
    }
  }
  // The per-layer outputs shrink where the model pools.
  FlexModel model(arch, tiny_options());
  auto layers = model->encode_layers(ids, mask);
  std::vector<int64_t> lengths;
  for (const auto& t : layers) lengths.push_back(t.size(1));
  EXPECT_EQ(lengths, (std::vector<int64_t>{11, 11, 11, 6, 6, 4, 4}));
}

TEST(FunnelModel, ASequenceGivesTheSameResultAloneAndPaddedInABatch) {
  torch::manual_seed(1);
  for (const bool q_only : {true, false}) {
    Architecture arch = arch_from(kFunnel);
    arch.pool.q_only = q_only;
    for (int variant = 0; variant < 3; ++variant) {  // mlm; cls over the mean of the pooled tokens; cls over [CLS]
      const HeadType head = variant == 0 ? HeadType::kMlm : HeadType::kSequence;
      ModelOptions options = tiny_options(head);
      if (variant == 2) options.classifier_pooling = ClassifierPooling::kFirst;
      FlexModel model(arch, options);
      model->eval();
      auto [ids, mask] = testing::tiny_batch(40, 11, 6);
      auto batch = model->forward(ids, mask).logits;
      auto alone = model->forward(ids.narrow(0, 1, 1).narrow(1, 0, 6), mask.narrow(0, 1, 1).narrow(1, 0, 6)).logits;
      auto from_batch = head == HeadType::kMlm ? batch.narrow(0, 1, 1).narrow(1, 0, 6) : batch.narrow(0, 1, 1);
      EXPECT_TRUE(torch::allclose(alone, from_batch, 1e-4, 1e-5))
          << "q_only " << q_only << " variant " << variant << " max diff "
          << (alone - from_batch).abs().max().item<double>();
    }
  }
}

TEST(FunnelModel, PoolQOnlyChangesTheResultAndEveryOpCanPool) {
  torch::manual_seed(2);
  auto [ids, mask] = testing::tiny_batch(40, 11, 6);
  Architecture arch = arch_from(kFunnel);
  torch::manual_seed(5);
  FlexModel a(arch, tiny_options());
  arch.pool.q_only = false;
  torch::manual_seed(5);
  FlexModel b(arch, tiny_options());
  a->eval();
  b->eval();
  EXPECT_FALSE(torch::allclose(a->forward(ids, mask).logits, b->forward(ids, mask).logits, 1e-4, 1e-5));
  // Ops without pooled queries (l, c) and hetero layers pool their whole stream; training runs.
  for (const char* json :
       {R"({"l":3,"h":[16,16,16],"n":[2,2,2],"o":["sa","l","c"],"f":[[32],[32],[32]],"p":["sdp","dct",3],"pool":{"stride":[1,2,2]}})",
        R"({"l":2,"h":[16,16],"f":[[24],[20]],"o":[["sa_sdp_8","sa_wma_8"],["sa_sdp_8","l_dct_8"]],"pool":{"stride":[1,2],"decoder":1}})",
        R"({"l":2,"h":[16,16],"f":[[24],[20]],"o":[["sa_sdp_8","sa_wma_8"],["sa_sdp_8","sa_wma_8"]],"pool":{"stride":[1,2]}})",
        // Widths change at the pooling layer: the decoder works at the last full-length width (24).
        R"({"l":3,"h":[16,24,12],"n":[2,2,2],"o":["sa","sa","sa"],"f":[[32],[32],[32]],"p":["sdp","sdp","sdp"],"pool":{"stride":[1,1,2]}})"}) {
    Architecture other = arch_from(json);
    FlexModel m(other, tiny_options());
    EXPECT_EQ(m->num_parameters(), model_cost(other, tiny_options()).total_params) << json;
    auto labels = torch::full({2, 11}, -100, torch::kLong);
    labels.index_put_({torch::indexing::Slice(), 2}, 5);
    auto loss = m->loss(ids, mask, labels);
    loss.backward();
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << json;
  }
}

TEST(FunnelModel, CheckpointRoundTripAndTokenModelFromASequenceCheckpoint) {
  torch::manual_seed(4);
  const Architecture arch = arch_from(kFunnel);
  const std::string dir = ::testing::TempDir() + "/funnel_ckpt";
  FlexModel model(arch, tiny_options());
  model->eval();
  save_checkpoint(dir, *model);
  auto loaded = load_checkpoint(dir);
  loaded->eval();
  auto [ids, mask] = testing::tiny_batch(40, 11, 6);
  EXPECT_TRUE(torch::equal(model->forward(ids, mask).logits, loaded->forward(ids, mask).logits));
  EXPECT_EQ(loaded->architecture(), arch);
  // A sequence-level checkpoint has no decoder; a token model built from it starts one fresh.
  const std::string cls_dir = ::testing::TempDir() + "/funnel_cls";
  FlexModel cls(arch, tiny_options(HeadType::kSequence));
  save_checkpoint(cls_dir, *cls);
  ModelOptions token = tiny_options(HeadType::kToken);
  auto token_model = load_checkpoint(cls_dir, torch::kCPU, nullptr, &token);
  EXPECT_EQ(token_model->forward(ids, mask).logits.size(1), 11);
}

TEST(FunnelModel, ProbeFeaturesOfPooledLayersAverageTheirValidTokens) {
  torch::manual_seed(6);
  FlexModel model(arch_from(kFunnel), tiny_options(HeadType::kSequence));
  auto [ids, mask] = testing::tiny_batch(40, 11, 6);  // row 1: 6 tokens, pooled 6 -> 4 -> 3 ([CLS] apart)
  datasets::TaskBatch b;
  b.input_ids = ids;
  b.attention_mask = mask;
  b.example_ids = {0, 1};
  b.labels = torch::tensor({1, 0}, torch::kLong);
  EvalSplit split{"dev", 1, [&](int64_t) { return b; }};
  const LayerFeatures f = extract_features(*model, split, datasets::TaskKind::kSequenceClassification, {2, 3, 6},
                                           ProbePooling::kMean, Precision::kFp32);
  model->eval();
  const auto h = model->encode_layers(ids, mask);
  EXPECT_TRUE(torch::allclose(f.features[0][1].to(torch::kFloat), h[2][1].slice(0, 0, 6).mean(0), 1e-2, 1e-2));
  // Layer 3 pooled 11 -> 6 tokens; row 1's 6 tokens become [CLS] + 3 windows.
  EXPECT_TRUE(torch::allclose(f.features[1][1].to(torch::kFloat), h[3][1].slice(0, 0, 4).mean(0), 1e-2, 1e-2));
  // Layer 6: 11 -> 6 -> 4 tokens; row 1 keeps [CLS] + 2 windows.
  EXPECT_TRUE(torch::allclose(f.features[2][1].to(torch::kFloat), h[6][1].slice(0, 0, 3).mean(0), 1e-2, 1e-2));
}

// Fuzz-style: seeded random mutations of the new model-dict fields (the pool key and its values, ak
// parameters, hetero ak heads). Whatever the mutation, reading and validating either succeed or
// raise a ConfigError located in the file; and what validation accepts builds and runs.
TEST(ModelDictFuzz, NewFieldsNeverCrashErrorsAreLocatedAndWhatIsAcceptedRuns) {
  std::mt19937 rng(20261206);
  auto pick = [&](int n) { return int(std::uniform_int_distribution<int>(0, n - 1)(rng)); };
  const std::vector<std::string> parts = {"qk", "convfixed", "convq", "convk", "vconv", "qkconv", "+", ":", "_", "9",
                                          "0", "-1", "3", "", "conv", "17", "qk+", ":4"};
  auto random_ak = [&] {
    std::string text;
    for (int k = 1 + pick(4); k > 0; --k) text += parts[size_t(pick(int(parts.size())))];
    return text;
  };
  auto random_value = [&]() -> nlohmann::json {
    switch (pick(8)) {
      case 0: return pick(24) - 3;
      case 1: return "abc";
      case 2: return pick(2) == 1;
      case 3: return nullptr;
      case 4: return nlohmann::json::array({1, 2});
      case 5: return nlohmann::json::object({{"x", 1}});
      case 6: return random_ak();
      default: return pick(9);
    }
  };
  const nlohmann::json standard = nlohmann::json::parse(
      R"({"l":3,"h":[16,16,16],"n":[2,2,2],"o":["sa","ak","sa"],"f":[[24],[24],[24]],"p":["sdp","qk+convq:3","wma"],)"
      R"("pool":{"stride":[1,2,1],"q_only":true,"separate_cls":true,"decoder":1}})");
  const nlohmann::json hetero = nlohmann::json::parse(
      R"({"l":2,"h":[16,16],"f":[[24],[24]],"o":[["sa_sdp_8","ak_convfixed:2_8"],["sa_wma_8","sa_sdp_8"]],"pool":{"stride":[1,2]}})");
  auto [ids, mask] = testing::tiny_batch(40, 9, 5);
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 600; ++trial) {
    nlohmann::json d = trial % 3 == 2 ? hetero : standard;
    const bool is_hetero = trial % 3 == 2;
    for (int m = 1 + pick(3); m > 0; --m) {
      const int kind = pick(7);
      const bool edits_pool = kind == 0 || kind == 1 || kind == 4 || kind == 5;
      if (edits_pool && !d["pool"].is_object()) continue;  // pool already replaced by something else
      if (kind == 0 && !d["pool"]["stride"].is_array()) continue;
      switch (kind) {
        case 0: d["pool"]["stride"][size_t(pick(int(d["l"].get<int>())))] = random_value(); break;
        case 1: d["pool"][std::vector<std::string>{"q_only", "separate_cls", "decoder", "window"}[size_t(pick(4))]] = random_value(); break;
        case 2: d["pool"] = random_value(); break;
        case 3:
          if (is_hetero) d["o"][size_t(pick(2))][size_t(pick(2))] = (pick(2) ? "ak_" : "sa_") + random_ak() + "_8";
          else d["p"][size_t(pick(3))] = random_ak();
          break;
        case 4: d["pool"].erase(std::vector<std::string>{"stride", "q_only", "decoder"}[size_t(pick(3))]); break;
        case 5: d["pool"]["stride"] = nlohmann::json::array({1, pick(10), pick(3)}); break;
        default: if (!is_hetero) d["o"][size_t(pick(3))] = std::vector<std::string>{"ak", "sa", "l", "c"}[size_t(pick(4))]; break;
      }
    }
    try {
      const Architecture arch = architecture_from_json(d, "fuzz.json");
      validate_architecture(arch, tiny_options(), "fuzz.json");
      ++accepted;
      if (accepted % 8 == 1) {  // a sample of the accepted ones is built and run
        FlexModel model(arch, tiny_options());
        model->eval();
        auto out = model->forward(ids, mask);
        EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>()) << d.dump();
        EXPECT_EQ(model->num_parameters(), model_cost(arch, tiny_options()).total_params) << d.dump();
      }
    } catch (const ConfigError& e) {
      ++rejected;
      EXPECT_EQ(std::string(e.what()).rfind("fuzz.json", 0), 0u) << e.what() << "\n" << d.dump();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a ConfigError: " << e.what() << "\n" << d.dump();
    }
  }
  EXPECT_GT(accepted, 30);
  EXPECT_GT(rejected, 300);
}

}  // namespace
}  // namespace flexnas::models
