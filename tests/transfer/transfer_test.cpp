// Weight transfer: layout vs model, identical copies, od slices, rp sharing and function
// preservation, every op kind and both formats, hand-computed overlaps, depth changes, warm-start
// choice, and the `flexnas transfer` CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include "design_space/architecture.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "models/checkpoint.h"
#include "transfer/transfer.h"

namespace flexnas::transfer {
namespace {

namespace fs = std::filesystem;
using models::FlexModel;
using models::ModelOptions;

Architecture arch(const std::string& json) { return architecture_from_json(nlohmann::json::parse(json), "test"); }

ModelOptions tiny_options(models::HeadType head = models::HeadType::kMlm) {
  ModelOptions o;
  o.vocab_size = 50;
  o.max_positions = 16;
  o.head = head;
  o.num_labels = 3;
  return o;
}

FlexModel build(const Architecture& a, const ModelOptions& o, uint64_t seed) {
  torch::manual_seed(seed);
  FlexModel m(a, o);
  m->eval();
  return m;
}

std::pair<torch::Tensor, torch::Tensor> batch(int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  auto ids = torch::randint(1, vocab, {3, 10}, torch::kLong);
  auto mask = torch::ones({3, 10}, torch::kLong);
  mask[2].narrow(0, 7, 3).zero_();
  return {ids, mask};
}

std::map<std::string, torch::Tensor> params_of(models::FlexModelImpl& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach();
  return out;
}

// Architectures covering every op kind and parameter in both formats.
const char* kStdSdp = R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})";
const char* kStdMix = R"({"l":3,"h":[64,32,32],"n":[2,2,4],"o":["sa","l","c"],"f":[[128],[64,64],[64]],"p":["wma","dft","5"]})";
const char* kStdMix2 = R"({"l":3,"h":[96,32,64],"n":[3,4,2],"o":["sa","l","c"],"f":[[256,64],[64],[32]],"p":["wma","dct","3"]})";
const char* kHetero = R"({"l":2,"h":[64,64],"f":[[128],[128,128]],"o":[["sa_sdp_32","l_dft_32"],["c_5_16","sa_wma_16","l_dct_16"]]})";
const char* kHetero2 = R"({"l":2,"h":[96,64],"f":[[64],[128]],"o":[["sa_sdp_16","c_3_16","l_dct_16"],["c_9_32","sa_wma_32"]]})";
// Funnel pooling: widths change after the first pooling layer (decoder up-projection) and a hetero
// model whose decoder copies a mixed layer.
const char* kFunnel =
    R"({"l":4,"h":[64,64,32,32],"n":[2,2,2,2],"o":["sa","l","sa","c"],"f":[[128],[128],[64],[64]],"p":["sdp","dct","wma","3"],)"
    R"("pool":{"stride":[1,1,2,1],"decoder":2}})";
const char* kFunnelHetero =
    R"({"l":2,"h":[64,64],"f":[[128],[128]],"o":[["sa_sdp_32","l_dft_32"],["sa_sdp_32","sa_wma_32"]],"pool":{"stride":[1,2],"decoder":1}})";

TEST(TransferTest, LayoutMatchesTheModelForEveryOpFormatAndHead) {
  for (const char* json : {kStdSdp, kStdMix, kStdMix2, kHetero, kHetero2, kFunnel, kFunnelHetero}) {
    for (auto head : {models::HeadType::kMlm, models::HeadType::kSequence, models::HeadType::kToken}) {
      const Architecture a = arch(json);
      const ModelOptions o = tiny_options(head);
      FlexModel m = build(a, o, 0);
      std::map<std::string, std::vector<int64_t>> expected;
      for (const auto& p : m->named_parameters()) expected[p.key()] = p.value().sizes().vec();
      std::map<std::string, std::vector<int64_t>> got;
      int64_t total = 0;
      for (const auto& s : tensor_layout(a, o)) {
        got[s.name] = s.shape();
        total += s.numel();
      }
      EXPECT_EQ(got, expected) << json;
      EXPECT_EQ(total, models::model_cost(a, o).total_params) << json;
    }
  }
}

TEST(TransferTest, IdenticalArchitecturesCopyEveryTensorAndGiveIdenticalOutputs) {
  for (const char* json : {kStdSdp, kStdMix, kHetero2, kFunnel, kFunnelHetero}) {
    for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
      const Architecture a = arch(json);
      const ModelOptions o = tiny_options();
      FlexModel src = build(a, o, 1), dst = build(a, o, 2);
      const TransferPlan plan = transfer_model(*src, *dst, {mode, 7});
      EXPECT_DOUBLE_EQ(plan.overlap(), 1.0);
      for (const auto& t : plan.tensors) EXPECT_EQ(t.fill, TensorFill::kCopied) << t.name;
      auto [ids, mask] = batch(o.vocab_size, 3);
      EXPECT_TRUE(torch::equal(src->forward(ids, mask).logits, dst->forward(ids, mask).logits)) << json;
      EXPECT_DOUBLE_EQ(transfer_overlap(a, a, o, mode), 1.0);
    }
  }
}

TEST(TransferTest, PooledAndUnpooledModelsShareTheirEncoderWeights) {
  // The same layers with and without pooling: every encoder tensor is copied; only the target's
  // decoder (absent in the source) starts fresh.
  Architecture pooled = arch(kFunnel);
  Architecture plain = pooled;
  plain.pool = PoolSpec{};
  const ModelOptions o = tiny_options();
  FlexModel src = build(plain, o, 1), dst = build(pooled, o, 2);
  const TransferPlan plan = transfer_model(*src, *dst, {TransferMode::kOrdered, 7});
  for (const auto& t : plan.tensors) {
    if (t.name.rfind("bert.decoder.", 0) == 0) EXPECT_EQ(t.received, 0) << t.name;
    else if (t.name.rfind("bert.", 0) == 0) EXPECT_EQ(t.fill, TensorFill::kCopied) << t.name;
    // The MLM head reads the decoder's width (64) in the pooled model, the last layer's (32) without.
  }
  EXPECT_LT(plan.overlap(), 1.0);
  EXPECT_GT(plan.overlap(), 0.5);
}

TEST(TransferTest, WidthChangeUnderOdCopiesExactSlices) {
  // h 64 -> 96 with 2 -> 3 heads of 32; FFN 128 -> 256.
  const Architecture s = arch(R"({"l":1,"h":[64],"n":[2],"o":["sa"],"f":[[128]],"p":["wma"]})");
  const Architecture t = arch(R"({"l":1,"h":[96],"n":[3],"o":["sa"],"f":[[256]],"p":["wma"]})");
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1), dst = build(t, o, 2);
  const TransferPlan plan = transfer_model(*src, *dst, {TransferMode::kOrdered, 0});
  auto S = params_of(*src), T = params_of(*dst);
  const std::string p = "bert.encoder.layer.0.";
  EXPECT_EQ(T["bert.embeddings.word_embeddings.weight"].sizes().vec(), (std::vector<int64_t>{50, 96}));
  EXPECT_TRUE(torch::equal(T["bert.embeddings.word_embeddings.weight"].narrow(1, 0, 64), S["bert.embeddings.word_embeddings.weight"]));
  // Query rows of the two common heads (rows 0..63 = heads 0 and 1 of 32), first 64 input columns.
  EXPECT_TRUE(torch::equal(T[p + "attention.self.query.weight"].narrow(0, 0, 64).narrow(1, 0, 64), S[p + "attention.self.query.weight"]));
  EXPECT_TRUE(torch::equal(T[p + "attention.self.wma"], S[p + "attention.self.wma"]));
  EXPECT_TRUE(torch::equal(T[p + "intermediate.dense.weight"].narrow(0, 0, 128).narrow(1, 0, 64), S[p + "intermediate.dense.weight"]));
  EXPECT_TRUE(torch::equal(T[p + "output.dense.weight"].narrow(0, 0, 64).narrow(1, 0, 128), S[p + "output.dense.weight"]));
  EXPECT_TRUE(torch::equal(T[p + "output.LayerNorm.bias"].narrow(0, 0, 64), S[p + "output.LayerNorm.bias"]));
  // Fresh parts keep their initialisation (N(0, 0.02) rows of the third head differ from zero).
  EXPECT_GT(T[p + "attention.self.query.weight"].narrow(0, 64, 32).abs().sum().item<double>(), 0.0);
  for (const auto& tt : plan.tensors)
    if (tt.name == p + "attention.self.query.weight") {
      EXPECT_EQ(tt.fill, TensorFill::kSliced);
      EXPECT_EQ(tt.received, 64 * 64);
    }
}

TEST(TransferTest, HeadDimensionChangeSlicesPerHead) {
  // h 64 -> 96 with 2 heads: per-head dims 32 -> 48. Head j's first 32 rows come from source head j.
  const Architecture s = arch(R"({"l":1,"h":[64],"n":[2],"o":["sa"],"f":[[64]],"p":["sdp"]})");
  const Architecture t = arch(R"({"l":1,"h":[96],"n":[2],"o":["sa"],"f":[[64]],"p":["sdp"]})");
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1), dst = build(t, o, 2);
  transfer_model(*src, *dst, {TransferMode::kOrdered, 0});
  auto S = params_of(*src), T = params_of(*dst);
  const std::string q = "bert.encoder.layer.0.attention.self.query.weight";
  EXPECT_TRUE(torch::equal(T[q].narrow(0, 48, 32).narrow(1, 0, 64), S[q].narrow(0, 32, 32)));
  const std::string d = "bert.encoder.layer.0.attention.output.dense.weight";
  EXPECT_TRUE(torch::equal(T[d].narrow(1, 48, 32).narrow(0, 0, 64), S[d].narrow(1, 32, 32)));
  const std::string dist = "bert.encoder.layer.0.attention.self.distance_embedding.weight";
  EXPECT_TRUE(torch::equal(T[dist].narrow(1, 0, 32), S[dist]));
}

TEST(TransferTest, RandomProjectionSharesOneMatrixPerWidthPair) {
  const Architecture s = arch(R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})");
  const Architecture t = arch(R"({"l":2,"h":[96,96],"n":[3,3],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})");
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1), dst = build(t, o, 2);
  ProjectionCache cache(11);
  const TransferPlan plan = transfer_model(*src, *dst, {TransferMode::kRandomProjection, 11}, &cache);
  EXPECT_EQ(cache.size(), 1u);  // every tensor met the one pair (64 -> 96)
  auto S = params_of(*src), T = params_of(*dst);
  auto Q = cache.q(64, 96).to(torch::kFloat);
  const float alpha = float(std::sqrt(96.0 / 64.0));
  // Widening: a partial isometry (orthonormal columns) by replication: one entry per row, units
  // 0..63 in place, each source unit held once or twice (96 = 64 + 32), entries 1/sqrt(copies).
  EXPECT_TRUE(torch::allclose(torch::matmul(Q.t(), Q), torch::eye(64), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal((Q != 0).sum(1), torch::ones({96}, torch::kLong)));
  const auto copies = (Q != 0).sum(0);  // [64]
  EXPECT_EQ(copies.min().item<int64_t>(), 1);
  EXPECT_EQ(copies.max().item<int64_t>(), 2);
  const auto source_of = Q.abs().argmax(1);  // [96] the source unit each target unit holds
  EXPECT_TRUE(torch::equal(source_of.narrow(0, 0, 64), torch::arange(64)));
  auto close = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-6); };
  // Per-unit gains are carried exactly: gamma_t(j) = gamma_s(source of j), in every layer.
  for (const char* ln : {"bert.embeddings.LayerNorm.weight", "bert.encoder.layer.1.output.LayerNorm.weight"})
    EXPECT_TRUE(close(T[ln], S[ln].index_select(0, source_of)));
  // Embedding rows (hidden vectors): E_t = E_s (alpha Q)^T.
  EXPECT_TRUE(close(T["bert.embeddings.word_embeddings.weight"], torch::matmul(S["bert.embeddings.word_embeddings.weight"], Q.t()) * alpha));
  // The same matrix on the input side of layer 1's query (first two heads) and the output side of layer 0.
  for (int layer : {0, 1}) {
    const std::string p = "bert.encoder.layer." + std::to_string(layer) + ".";
    EXPECT_TRUE(close(T[p + "attention.self.query.weight"].narrow(0, 0, 64),
                      torch::matmul(S[p + "attention.self.query.weight"], Q.t()) / alpha));
    EXPECT_TRUE(close(T[p + "output.dense.weight"], torch::matmul(Q, S[p + "output.dense.weight"]) * alpha));
    EXPECT_TRUE(close(T[p + "output.LayerNorm.bias"], torch::matmul(Q, S[p + "output.LayerNorm.bias"]) * alpha));
  }
  EXPECT_TRUE(close(T["cls.predictions.decoder.weight"], torch::matmul(S["cls.predictions.decoder.weight"], Q.t()) / alpha));
  int projected = 0;
  for (const auto& tt : plan.tensors) projected += tt.fill == TensorFill::kProjected;
  EXPECT_GT(projected, 10);
  // The same seed draws the same matrix; another seed another one.
  ProjectionCache again(11), other(12);
  EXPECT_TRUE(torch::equal(again.q(64, 96), cache.q(64, 96)));
  EXPECT_FALSE(torch::allclose(other.q(64, 96), cache.q(64, 96)));
  EXPECT_TRUE(torch::equal(cache.q(64, 64), torch::eye(64, torch::kDouble)));
  // Narrowing: a random subset of 64 of the 96 units, in order (one entry 1 per row, distinct
  // columns), drawn from the seed.
  auto N = cache.q(96, 64).to(torch::kFloat);
  EXPECT_TRUE(torch::equal(torch::matmul(N, N.t()), torch::eye(64)));
  EXPECT_TRUE(torch::equal(N.sum(1), torch::ones({64})));
  const auto kept = N.argmax(1);
  EXPECT_TRUE(torch::all(kept.narrow(0, 1, 63) > kept.narrow(0, 0, 63)).item<bool>());
  EXPECT_FALSE(torch::equal(kept, torch::arange(64)));  // not od's first 64 (for this seed)
  EXPECT_FALSE(torch::equal(ProjectionCache(12).q(96, 64), cache.q(96, 64)));
}

// Relative distance ||a - b|| / ||b|| over unpadded tokens.
double rel_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

struct FunctionErrors {
  double rp = 0, od = 0, fresh = 0;
};

/// Widen 64 -> 96 (2 -> 3 heads of 32) a trained-looking source (N(0, 0.1) weights and biases,
/// LayerNorm gains N(1, gain_std)) and measure, over unpadded tokens, the relative error of the last
/// hidden state: rp and fresh against alpha Q h_s (rp's correspondence), od against h_s in the first
/// 64 entries (od's correspondence). Mean over three seeds.
FunctionErrors function_errors(double gain_std) {
  const Architecture s = arch(R"({"l":2,"h":[64,64],"n":[2,2],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})");
  const Architecture t = arch(R"({"l":2,"h":[96,96],"n":[3,3],"o":["sa","sa"],"f":[[128],[128]],"p":["sdp","sdp"]})");
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1);
  {
    torch::NoGradGuard g;
    torch::manual_seed(5);
    for (auto& p : src->named_parameters()) {
      if (p.key().find("LayerNorm.weight") != std::string::npos)
        p.value().normal_(1.0, gain_std);
      else
        p.value().normal_(0.0, 0.1);
    }
  }
  auto [ids, mask] = batch(o.vocab_size, 3);
  auto hs = src->encode(ids, mask);  // [B,T,64]
  auto valid = mask.to(torch::kBool);
  FunctionErrors e;
  for (uint64_t seed : {1, 2, 3}) {
    FlexModel rp = build(t, o, 10 + seed), od = build(t, o, 10 + seed), fresh = build(t, o, 10 + seed);
    ProjectionCache cache(seed);
    transfer_model(*src, *rp, {TransferMode::kRandomProjection, seed}, &cache);
    transfer_model(*src, *od, {TransferMode::kOrdered, seed});
    auto Q = cache.q(64, 96).to(torch::kFloat) * float(std::sqrt(96.0 / 64.0));
    auto target = torch::matmul(hs, Q.t()).index({valid});  // alpha Q h_s
    e.rp += rel_error(rp->encode(ids, mask).index({valid}), target) / 3;
    e.fresh += rel_error(fresh->encode(ids, mask).index({valid}), target) / 3;
    e.od += rel_error(od->encode(ids, mask).index({valid}).narrow(1, 0, 64), hs.index({valid})) / 3;
  }
  std::printf("gain std %.2f: rp %.4f od %.4f fresh %.4f\n", gain_std, e.rp, e.od, e.fresh);
  return e;
}

TEST(TransferTest, RandomProjectionApproximatelyComputesTheProjectedSourceFunction) {
  // Widening replicates units, so per-unit LayerNorm gains commute with alpha Q whatever their
  // values; what separates rp from the exact projection is the third head's fresh weights and
  // LayerNorm's mean over unevenly replicated units. (A dense rotation measured 0.02 with unit
  // gains but 0.22 with N(1, 0.1) gains, about od's error.)
  for (double gain_std : {0.0, 0.1}) {
    const FunctionErrors e = function_errors(gain_std);
    EXPECT_LT(e.rp, 0.1) << "gain std " << gain_std;
    EXPECT_LT(e.rp, e.od / 2) << "gain std " << gain_std;
    EXPECT_LT(e.rp, e.fresh / 10) << "gain std " << gain_std;
  }
}

/// Fills the target with NaN, transfers, and counts the finite entries: the elements that received
/// source values, measured on the model.
int64_t measured_received(models::FlexModelImpl& src, models::FlexModelImpl& dst, const TransferOptions& options,
                          TransferPlan* plan) {
  {
    torch::NoGradGuard g;
    for (auto& p : dst.parameters()) p.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  *plan = transfer_model(src, dst, options);
  int64_t n = 0;
  for (auto& p : dst.parameters()) n += torch::isfinite(p).sum().item<int64_t>();
  return n;
}

TEST(TransferTest, EveryOpKindAndFormatOverlapFromTheDictsEqualsTheMeasuredTransfer) {
  const std::vector<std::pair<const char*, const char*>> pairs = {
      {kStdSdp, kStdMix}, {kStdMix, kStdMix2}, {kStdMix2, kStdMix}, {kStdMix, kStdSdp}, {kHetero, kHetero2}, {kHetero2, kHetero}};
  for (const auto& [a, b] : pairs) {
    for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
      const Architecture s = arch(a), t = arch(b);
      const ModelOptions o = tiny_options();
      FlexModel src = build(s, o, 1), dst = build(t, o, 2);
      TransferPlan plan;
      const int64_t measured = measured_received(*src, *dst, {mode, 3}, &plan);
      EXPECT_EQ(measured, plan.received) << a << " -> " << b << " " << mode_name(mode);
      EXPECT_EQ(plan.total, models::model_cost(t, o).total_params);
      const double from_dicts = transfer_overlap(s, t, o, mode);
      EXPECT_DOUBLE_EQ(from_dicts, double(measured) / double(plan.total));
      EXPECT_GT(from_dicts, 0.3);
      EXPECT_LT(from_dicts, 1.0);
    }
  }
}

TEST(TransferTest, ConvolutionTapsAlignAtTheCentre) {
  const Architecture s = arch(R"({"l":1,"h":[32],"n":[2],"o":["c"],"f":[[64]],"p":["3"]})");
  const Architecture t = arch(R"({"l":1,"h":[32],"n":[2],"o":["c"],"f":[[64]],"p":["7"]})");
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1), dst = build(t, o, 2);
  transfer_model(*src, *dst, {TransferMode::kOrdered, 0});
  auto S = params_of(*src), T = params_of(*dst);
  const std::string p = "bert.encoder.layer.0.attention.self.";
  EXPECT_TRUE(torch::equal(T[p + "key_conv_attn_layer.depthwise.weight"].narrow(2, 2, 3), S[p + "key_conv_attn_layer.depthwise.weight"]));
  EXPECT_TRUE(torch::equal(T[p + "key_conv_attn_layer.pointwise.weight"], S[p + "key_conv_attn_layer.pointwise.weight"]));
  // conv_kernel_layer rows: one head of k taps; source taps 0..2 land on target taps 2..4.
  EXPECT_TRUE(torch::equal(T[p + "conv_kernel_layer.weight"].narrow(0, 2, 3), S[p + "conv_kernel_layer.weight"]));
  EXPECT_TRUE(torch::equal(T[p + "conv_out_layer.weight"], S[p + "conv_out_layer.weight"]));
  // The hetero format: c heads of different kernels.
  const Architecture hs = arch(R"({"l":1,"h":[32],"f":[[64]],"o":[["c_3_16","sa_sdp_16"]]})");
  const Architecture ht = arch(R"({"l":1,"h":[32],"f":[[64]],"o":[["c_5_16","c_3_16"]]})");
  FlexModel hsrc = build(hs, o, 1), hdst = build(ht, o, 2);
  transfer_model(*hsrc, *hdst, {TransferMode::kOrdered, 0});
  auto HS = params_of(*hsrc), HT = params_of(*hdst);
  const std::string h0 = "bert.encoder.layer.0.attention.self.heads.0.";
  EXPECT_TRUE(torch::equal(HT[h0 + "conv_kernel_layer.weight"].narrow(0, 1, 3), HS[h0 + "conv_kernel_layer.weight"]));
  EXPECT_TRUE(torch::equal(HT[h0 + "conv_out_layer.weight"], HS[h0 + "conv_out_layer.weight"]));
}

// Op ak (attention kernels): the layout matches the model; between ak layers with other windows the
// relative-table columns align at distance 0; components missing on one side stay fresh; od and rp
// preserve the function of identical architectures; overlaps from the dicts equal the measured ones.
TEST(TransferTest, AttentionKernelsTransferAroundDistanceZero) {
  const char* std_a = R"({"l":2,"h":[32,32],"n":[4,2],"o":["ak","ak"],"f":[[64],[64]],"p":["qk+convfixed+convq+convk+vconv+qkconv:2","convfixed:3"]})";
  const char* std_b = R"({"l":2,"h":[48,32],"n":[4,2],"o":["ak","ak"],"f":[[64],[64]],"p":["qk+convfixed+convq+vconv:4","convfixed+convk:1"]})";
  const char* het_a = R"({"l":1,"h":[32],"f":[[64]],"o":[["ak_qk+convfixed+convq+convk+vconv+qkconv:2_16","sa_sdp_16"]]})";
  const char* het_b = R"({"l":1,"h":[32],"f":[[64]],"o":[["ak_convfixed+convq+vconv:3_8","ak_qk_8","sa_sdp_8","l_dct_8"]]})";
  for (const char* json : {std_a, std_b, het_a, het_b}) {
    const Architecture a = arch(json);
    const ModelOptions o = tiny_options();
    FlexModel m = build(a, o, 0);
    std::map<std::string, std::vector<int64_t>> expected, got;
    for (const auto& p : m->named_parameters()) expected[p.key()] = p.value().sizes().vec();
    for (const auto& s : tensor_layout(a, o)) got[s.name] = s.shape();
    EXPECT_EQ(got, expected) << json;
    for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
      FlexModel src = build(a, o, 1), dst = build(a, o, 2);
      EXPECT_DOUBLE_EQ(transfer_model(*src, *dst, {mode, 7}).overlap(), 1.0);
      auto [ids, mask] = batch(o.vocab_size, 3);
      EXPECT_TRUE(torch::equal(src->forward(ids, mask).logits, dst->forward(ids, mask).logits)) << json;
    }
  }
  for (const auto& [a, b] : std::vector<std::pair<const char*, const char*>>{{std_a, std_b}, {std_b, std_a}, {het_a, het_b}, {het_b, het_a}})
    for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
      const Architecture s = arch(a), t = arch(b);
      const ModelOptions o = tiny_options();
      FlexModel src = build(s, o, 1), dst = build(t, o, 2);
      TransferPlan plan;
      EXPECT_EQ(measured_received(*src, *dst, {mode, 3}, &plan), plan.received) << a << " -> " << b;
      EXPECT_DOUBLE_EQ(transfer_overlap(s, t, o, mode), plan.overlap());
      EXPECT_GT(plan.overlap(), 0.3);
      EXPECT_LT(plan.overlap(), 1.0);
    }
  // od, window 2 -> 4: the source's 5 columns land on the target's columns 2..6 (distance 0 at 2 and 4).
  const ModelOptions o = tiny_options();
  FlexModel src = build(arch(std_a), o, 1), dst = build(arch(std_b), o, 2);
  auto before = params_of(*dst);
  const TransferPlan plan = transfer_model(*src, *dst, {TransferMode::kOrdered, 0});
  auto S = params_of(*src), T = params_of(*dst);
  const std::string p0 = "bert.encoder.layer.0.attention.self.", p1 = "bert.encoder.layer.1.attention.self.";
  EXPECT_TRUE(torch::equal(T[p0 + "convfixed"].narrow(1, 2, 5), S[p0 + "convfixed"]));
  EXPECT_TRUE(torch::equal(T[p0 + "convfixed"].narrow(1, 0, 2), before[p0 + "convfixed"].narrow(1, 0, 2)));  // untouched
  // h 32 -> 48, 4 heads: head dims 8 -> 12; the first 8 rows of the table carry over.
  EXPECT_TRUE(torch::equal(T[p0 + "convq"].narrow(0, 0, 8).narrow(1, 2, 5), S[p0 + "convq"]));
  // value_conv: first max(n/2, 1) = 2 heads of 8 -> 12 channels; channels 0..7 and 12..19 receive.
  EXPECT_TRUE(torch::equal(T[p0 + "value_conv.weight"].narrow(0, 0, 8).narrow(2, 2, 5), S[p0 + "value_conv.weight"].narrow(0, 0, 8)));
  EXPECT_TRUE(torch::equal(T[p0 + "value_conv.weight"].narrow(0, 12, 8).narrow(2, 2, 5), S[p0 + "value_conv.weight"].narrow(0, 8, 8)));
  // Window 3 -> 1: the source's centre 3 columns (distances -1..1).
  EXPECT_TRUE(torch::equal(T[p1 + "convfixed"], S[p1 + "convfixed"].narrow(1, 2, 3)));
  // Kernels the source lacks are fresh; tensors the target lacks are not asked for.
  for (const auto& t : plan.tensors) {
    if (t.name == p1 + "convk") EXPECT_EQ(t.fill, TensorFill::kFresh);
    if (t.name == p1 + "value.weight") EXPECT_EQ(t.fill, TensorFill::kCopied);
  }
  EXPECT_TRUE(torch::equal(T[p1 + "convk"], before[p1 + "convk"]));
  // The hetero format: per-head tables, centred the same way.
  FlexModel hsrc = build(arch(het_a), o, 1), hdst = build(arch(het_b), o, 2);
  transfer_model(*hsrc, *hdst, {TransferMode::kOrdered, 0});
  auto HS = params_of(*hsrc), HT = params_of(*hdst);
  const std::string h0 = "bert.encoder.layer.0.attention.self.heads.0.";
  EXPECT_TRUE(torch::equal(HT[h0 + "convfixed"].narrow(1, 1, 5), HS[h0 + "convfixed"]));
  EXPECT_TRUE(torch::equal(HT[h0 + "convq"].narrow(1, 1, 5), HS[h0 + "convq"].narrow(0, 0, 8)));
  EXPECT_TRUE(torch::equal(HT[h0 + "value_conv.weight"].narrow(2, 1, 5), HS[h0 + "value_conv.weight"].narrow(0, 0, 8)));
}

TEST(TransferTest, OverlapByHandOnSmallCases) {
  ModelOptions o;
  o.vocab_size = 10;
  o.max_positions = 4;  // distance tables of 7 rows
  const Architecture a = arch(R"({"l":1,"h":[8],"n":[2],"o":["sa"],"f":[[16]],"p":["sdp"]})");
  // Wider FFN. Target: embeddings 10*8 + 8 + 16 = 104; core 3*(64+8) + 7*4 = 244; SelfOutput 64+8+16 = 88;
  // FFN 32*8+32 = 288; output 8*32+8+16 = 280; MLM head 64+8+16+80+10 = 178 -> 1182. Received: all but
  // FFN rows 16..31 and output columns 16..31: 104+244+88+(16*8+16)+(8*16+8+16)+178 = 910.
  const Architecture wide = arch(R"({"l":1,"h":[8],"n":[2],"o":["sa"],"f":[[32]],"p":["sdp"]})");
  auto plan = plan_transfer(a, wide, o, o, TransferMode::kOrdered);
  EXPECT_EQ(plan.total, 1182);
  EXPECT_EQ(plan.received, 910);
  EXPECT_DOUBLE_EQ(transfer_overlap(a, wide, o), 910.0 / 1182.0);
  // Another operation in the layer: the core (l: 2*(64+8) + 28 = 172) and the SelfOutput weight (64) stay
  // fresh, everything else transfers (defect 30): total 104+172+88+144+152+178 = 838, received 838-172-64 = 602.
  const Architecture mix = arch(R"({"l":1,"h":[8],"n":[2],"o":["l"],"f":[[16]],"p":["dft"]})");
  plan = plan_transfer(a, mix, o, o, TransferMode::kOrdered);
  EXPECT_EQ(plan.total, 838);
  EXPECT_EQ(plan.received, 602);
  // Narrower hidden size under od vs rp: 8 -> 4 (n 2 -> 1, d = 4 both). Target params: embeddings 40+4+8 = 52;
  // core 3*(16+4) + 7*4 = 88; SelfOutput 16+4+8 = 28; FFN 16*4+16 = 80; output 4*16+4+8 = 76; head 16+4+8+40+10 = 78
  // -> 402. od: every hidden axis keeps min(8,4) = 4 = the whole target axis, heads: 1 common head of d 4 -> all 402.
  const Architecture narrow = arch(R"({"l":1,"h":[4],"n":[1],"o":["sa"],"f":[[16]],"p":["sdp"]})");
  plan = plan_transfer(a, narrow, o, o, TransferMode::kOrdered);
  EXPECT_EQ(plan.total, 402);
  EXPECT_EQ(plan.received, 402);
  // Widening 8 -> 12 (n 2 -> 3, d 4): od receives min widths, rp the whole hidden axes.
  // Target: emb 120+12+24 = 156; core 3*(144+12)+28 = 496; SelfOutput 144+12+24 = 180; FFN 16*12+16 = 208;
  // output 12*16+12+24 = 228; head 144+12+24+120+10 = 310 -> 1578.
  // od: emb 80+8+16 = 104; core 3*(8*8+8)+28 = 244; SelfOutput 8*8+8+16 = 88; FFN 16*8+16 = 144; output
  // 8*16+8+16 = 152; head 64+8+16+80+10 = 178 -> 910.  rp: emb 120+12+24 = 156; core 3*(8*12+8)+28 = 340;
  // SelfOutput 12*8+12+24 = 132; FFN 16*12+16 = 208; output 12*16+12+24 = 228; head 310 -> 1374.
  const Architecture wider = arch(R"({"l":1,"h":[12],"n":[3],"o":["sa"],"f":[[16]],"p":["sdp"]})");
  EXPECT_EQ(plan_transfer(a, wider, o, o, TransferMode::kOrdered).total, 1578);
  EXPECT_EQ(plan_transfer(a, wider, o, o, TransferMode::kOrdered).received, 910);
  EXPECT_EQ(plan_transfer(a, wider, o, o, TransferMode::kRandomProjection).received, 1374);
}

TEST(TransferTest, DifferentDepths) {
  const Architecture two = arch(R"({"l":2,"h":[32,32],"n":[2,2],"o":["sa","l"],"f":[[64],[64]],"p":["sdp","dft"]})");
  const Architecture three = arch(R"({"l":3,"h":[32,32,32],"n":[2,2,2],"o":["sa","l","sa"],"f":[[64],[64],[64]],"p":["sdp","dft","sdp"]})");
  const ModelOptions o = tiny_options();
  for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
    // Deeper: layers 0-1 copied, layer 2 fresh, head copied.
    FlexModel src = build(two, o, 1), dst = build(three, o, 2);
    const TransferPlan plan = transfer_model(*src, *dst, {mode, 0});
    for (const auto& b : summarize_blocks(plan)) {
      if (b.block == "layer 2") {
        EXPECT_EQ(b.fresh, b.total);
      } else {
        EXPECT_EQ(b.copied, b.total) << b.block;
      }
    }
    // Shallower: every target tensor copied from the source's first two layers.
    FlexModel src3 = build(three, o, 3), dst2 = build(two, o, 4);
    const TransferPlan back = transfer_model(*src3, *dst2, {mode, 0});
    EXPECT_DOUBLE_EQ(back.overlap(), 1.0);
    auto S = params_of(*src3), T = params_of(*dst2);
    const std::string n = "bert.encoder.layer.1.attention.self.query.weight";
    EXPECT_TRUE(torch::equal(S[n], T[n]));
  }
}

TEST(TransferTest, FormatMismatchAndBadSourceTensorsAreClearErrors) {
  const ModelOptions o = tiny_options();
  const Architecture s = arch(kStdSdp), h = arch(kHetero);
  try {
    plan_transfer(s, h, o, o, TransferMode::kOrdered);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("same model-dict format on both sides: the source is standard, the target is hetero"),
              std::string::npos)
        << e.what();
  }
  FlexModel dst = build(s, o, 0);
  FlexModel src = build(s, o, 1);
  auto tensors = params_of(*src);
  tensors.erase("bert.encoder.layer.1.output.dense.bias");
  try {
    transfer_weights(s, o, tensors, *dst, {}, nullptr, "ckpt/model.safetensors");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "ckpt/model.safetensors: error: tensor 'bert.encoder.layer.1.output.dense.bias': missing (the source "
              "architecture has it)");
  }
  tensors = params_of(*src);
  tensors["bert.embeddings.LayerNorm.weight"] = torch::ones({7});
  EXPECT_THROW(transfer_weights(s, o, tensors, *dst, {}, nullptr, "x"), ConfigError);
  EXPECT_EQ(parse_mode("RP", "--mode"), TransferMode::kRandomProjection);
  try {
    parse_mode("xx", "--mode");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "error: --mode: unknown transfer mode 'xx' (allowed: od, rp)");
  }
}

TEST(TransferTest, WarmStartPicksTheLargestOverlapAndTheNearerOnTies) {
  Library lib;
  const Architecture target = arch(R"({"l":1,"h":[8],"n":[2],"o":["sa"],"f":[[16]],"p":["sdp"]})");
  const Architecture same_a = arch(R"({"l":1,"h":[8],"n":[2],"o":["sa"],"f":[[16]],"p":["wma"]})");   // overlap 1
  const Architecture same_b = arch(R"({"l":1,"h":[8],"n":[2],"o":["sa"],"f":[[32]],"p":["sdp"]})");   // overlap 1
  const Architecture lower = arch(R"({"l":1,"h":[8],"n":[2],"o":["l"],"f":[[16]],"p":["dft"]})");     // < 1
  const Architecture hetero = arch(R"({"l":1,"h":[8],"f":[[16]],"o":[["sa_sdp_4","sa_sdp_4"]]})");
  lib.archs = {target, lower, same_b, same_a, hetero};
  lib.hashes = {"t", "low", "b", "a", "het"};
  lib.pad_to_size();
  lib.neighbors[0] = {"het", "low", "b", "a"};  // nearest first
  lib.rebuild_index();
  ModelOptions o;
  o.vocab_size = 10;
  o.max_positions = 4;
  std::map<std::string, std::string> trained = {{"low", "ckpt/low"}, {"a", "ckpt/a"}, {"b", "ckpt/b"}, {"het", "ckpt/het"}};
  const double low_overlap = transfer_overlap(lower, target, o);
  ASSERT_LT(low_overlap, 1.0);
  auto best = choose_warm_start(lib, 0, trained, 0.5, o);
  ASSERT_TRUE(best);
  EXPECT_EQ(best->hash, "b");  // b and a both 1.0; b is nearer
  EXPECT_EQ(best->checkpoint, "ckpt/b");
  EXPECT_EQ(best->index, 2);
  EXPECT_DOUBLE_EQ(best->overlap, 1.0);
  trained.erase("b");
  trained.erase("a");
  best = choose_warm_start(lib, 0, trained, 0.5, o);
  ASSERT_TRUE(best);
  EXPECT_EQ(best->hash, "low");
  EXPECT_DOUBLE_EQ(best->overlap, low_overlap);
  EXPECT_FALSE(choose_warm_start(lib, 0, trained, low_overlap + 1e-9, o));
  EXPECT_FALSE(choose_warm_start(lib, 0, {}, 0.0, o));
}

// ---------------------------------------------------------------------------------------------
// CLI: runs the real executable.

struct CliResult {
  int exit_code;
  std::string output;
};

CliResult run_cli(const std::string& args) {
  const std::string out_file = (fs::temp_directory_path() / ("flexnas_transfer_cli_" + std::to_string(::getpid()) + ".txt")).string();
  const int status = std::system((std::string("\"") + FLEXNAS_BIN + "\" " + args + " > \"" + out_file + "\" 2>&1").c_str());
  std::ifstream in(out_file);
  std::stringstream ss;
  ss << in.rdbuf();
  fs::remove(out_file);
  return {WEXITSTATUS(status), ss.str()};
}

TEST(TransferCliTest, WritesACheckpointAndReportsPerBlock) {
  const fs::path dir = fs::temp_directory_path() / ("flexnas_transfer_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const Architecture s = arch(kStdSdp);
  const ModelOptions o = tiny_options();
  FlexModel src = build(s, o, 1);
  models::save_checkpoint((dir / "src").string(), *src);
  write_file_atomic((dir / "wide.json").string(),
                    R"({"l":3,"h":[96,96,64],"n":[3,3,2],"o":["sa","l","sa"],"f":[[128],[128],[64]],"p":["sdp","dft","sdp"]})");
  write_file_atomic((dir / "hetero.json").string(), kHetero);
  write_file_atomic((dir / "bad.json").string(), "{\"l\": 1, \"h\": [64], \"n\": [2], \"o\": [\"zz\"], \"f\": [[64]], \"p\": [\"sdp\"]}");
  const std::string from = (dir / "src").string(), out = (dir / "out").string();

  auto r = run_cli("transfer --from " + from + " --to " + (dir / "wide.json").string() + " --mode rp --seed 3 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mode: rp, seed 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("projected"), std::string::npos) << r.output;
  const double expected = transfer_overlap(s, load_architecture((dir / "wide.json").string()), o, TransferMode::kRandomProjection);
  char text[64];
  std::snprintf(text, sizeof text, "overlap: %.6f", expected);
  EXPECT_NE(r.output.find(text), std::string::npos) << r.output;
  // A normal checkpoint whose transferred part matches a library-level transfer with the same seed.
  models::CheckpointConfig config;
  FlexModel loaded = models::load_checkpoint(out, torch::kCPU, &config);
  EXPECT_EQ(config.arch, load_architecture((dir / "wide.json").string()));
  FlexModel again = build(config.arch, o, 3);
  transfer_model(*src, *again, {TransferMode::kRandomProjection, 3});
  auto L = params_of(*loaded), A = params_of(*again);
  for (const auto& [name, t] : A) EXPECT_TRUE(torch::allclose(L[name], t, 1e-6, 1e-7)) << name;

  r = run_cli("transfer --from " + from + " --to " + (dir / "hetero.json").string() + " --out " + out + "2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("hetero.json: error: the target is in the hetero format but the source checkpoint"), std::string::npos)
      << r.output;
  r = run_cli("transfer --from " + from + " --to " + (dir / "wide.json").string() + " --mode xx --out " + out + "3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("error: --mode: unknown value 'xx'; allowed: od, rp"), std::string::npos) << r.output;
  r = run_cli("transfer --from " + (dir / "nope").string() + " --to " + (dir / "wide.json").string() + " --out " + out + "3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("error: --from: '"), std::string::npos) << r.output;
  r = run_cli("transfer --from " + from + " --to " + (dir / "bad.json").string() + " --out " + out + "3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bad.json:1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unknown operation type 'zz'"), std::string::npos) << r.output;
  r = run_cli("transfer --from " + from + " --to " + (dir / "wide.json").string() + " --out " + from);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("error: --out: "), std::string::npos) << r.output;
  fs::remove_all(dir);
}


// Block parameter sharing (models: Architecture::share): a sharing layer holds only its own
// proj_head, and a target layer i reads source layer i's parameters wherever the source keeps them.
const char* kShared =
    R"({"l":4,"h":[32,32,32,48],"n":[2,2,2,2],"o":["sa","sa","sa","l"],"f":[[64],[64],[64],[64]],"p":["sdp","sdp","sdp","dft"],)"
    R"("share":[0,0,0,3],"pool":{"stride":[1,2,1,1],"decoder":1}})";
const char* kSharedHetero =
    R"({"l":3,"h":[32,32,32],"f":[[64],[64],[64]],"o":[["sa_sdp_16","c_3_16"],["sa_sdp_16","c_3_16"],["sa_sdp_16","c_3_16"]],)"
    R"("share":[0,1,1]})";

Architecture unshared(const char* json) {
  Architecture a = arch(json);
  a.share.clear();
  return a;
}

TEST(TransferShareTest, LayoutMatchesTheModelAndCountsSharedTensorsOnce) {
  for (const char* json : {kShared, kSharedHetero})
    for (auto head : {models::HeadType::kMlm, models::HeadType::kSequence, models::HeadType::kToken}) {
      const Architecture a = arch(json);
      const ModelOptions o = tiny_options(head);
      FlexModel m = build(a, o, 0);
      std::map<std::string, std::vector<int64_t>> expected, got;
      for (const auto& p : m->named_parameters()) expected[p.key()] = p.value().sizes().vec();
      int64_t total = 0;
      for (const auto& s : tensor_layout(a, o)) {
        got[s.name] = s.shape();
        total += s.numel();
      }
      EXPECT_EQ(got, expected) << json;
      EXPECT_EQ(total, m->num_parameters()) << json;
      EXPECT_LT(total, models::model_cost(unshared(json), o).total_params) << json;
    }
}

TEST(TransferShareTest, SharedSourceToUnsharedTargetComputesTheSameFunction) {
  // Every layer of the unshared target receives its owner's tensors: the same network, untied.
  for (const char* json : {kShared, kSharedHetero})
    for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
      const ModelOptions o = tiny_options();
      FlexModel src = build(arch(json), o, 1), dst = build(unshared(json), o, 2);
      const TransferPlan plan = transfer_model(*src, *dst, {mode, 5});
      EXPECT_DOUBLE_EQ(plan.overlap(), 1.0) << json;
      for (const auto& t : plan.tensors) EXPECT_EQ(t.fill, TensorFill::kCopied) << t.name;
      EXPECT_DOUBLE_EQ(transfer_overlap(arch(json), unshared(json), o, mode), 1.0);
      auto [ids, mask] = batch(o.vocab_size, 3);
      EXPECT_TRUE(torch::allclose(src->forward(ids, mask).logits, dst->forward(ids, mask).logits, 1e-5, 1e-6)) << json;
      auto S = params_of(*src), T = params_of(*dst);
      const std::string q = ".attention.self.query.weight";
      EXPECT_TRUE(torch::equal(T["bert.encoder.layer.2" + q], S["bert.encoder.layer." + std::to_string(arch(json).owner(2)) + q]));
    }
}

TEST(TransferShareTest, UnsharedSourceFillsTheOwnersLayerByLayer) {
  const ModelOptions o = tiny_options();
  for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
    FlexModel src = build(unshared(kShared), o, 1), dst = build(arch(kShared), o, 2);
    const TransferPlan plan = transfer_model(*src, *dst, {mode, 5});
    EXPECT_DOUBLE_EQ(plan.overlap(), 1.0);
    auto S = params_of(*src), T = params_of(*dst);
    for (const auto& [name, t] : T) {
      ASSERT_TRUE(S.count(name)) << name;
      EXPECT_TRUE(torch::equal(t, S[name])) << name;
    }
    // Shared to shared with another pattern: the target's owner of layers 0..2 is layer 0, which
    // reads the source's layer 0; the source's layer 3 feeds the target's layer 3.
    Architecture other = arch(kShared);
    other.share = {0, 1, 1, 3};
    FlexModel dst2 = build(other, o, 3);
    EXPECT_DOUBLE_EQ(transfer_model(*dst, *dst2, {mode, 5}).overlap(), 1.0);
    auto T2 = params_of(*dst2);
    const std::string f = ".intermediate.dense.weight";
    EXPECT_TRUE(torch::equal(T2["bert.encoder.layer.1" + f], T["bert.encoder.layer.0" + f]));  // source layer 1 = its layer 0
  }
}

TEST(TransferShareTest, WidthChangesUnderSharingMatchThePlan) {
  const ModelOptions o = tiny_options();
  Architecture wide = arch(kShared);
  for (LayerSpec& l : wide.layers) l.hidden = l.hidden == 32 ? 48 : 64;
  for (auto mode : {TransferMode::kOrdered, TransferMode::kRandomProjection}) {
    FlexModel src = build(arch(kShared), o, 1), dst = build(wide, o, 2);
    const TransferPlan measured = transfer_model(*src, *dst, {mode, 9});
    const TransferPlan planned = plan_transfer(arch(kShared), wide, o, o, mode);
    EXPECT_EQ(measured.received, planned.received);
    EXPECT_EQ(measured.total, dst->num_parameters());
    EXPECT_GT(planned.overlap(), 0.3);
  }
}

}  // namespace
}  // namespace flexnas::transfer
