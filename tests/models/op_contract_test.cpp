// The contract every registered operation type meets, in both model-dict formats: output shape,
// finiteness, masking (padding neither leaks nor changes results), seeded determinism, JSON round
// trip, parameter count from the model dict, and every parameter used. A new op file gets all of
// these without writing a test.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/config_node.h"
#include "design_space/op_catalog.h"
#include "models/op_registry.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {

using testing::hetero_arch;
using testing::standard_arch;
using testing::tiny_batch;
using testing::tiny_options;

struct OpCase {
  std::string op, param;
  bool hetero;
};

void PrintTo(const OpCase& c, std::ostream* os) { *os << (c.hetero ? "hetero " : "standard ") << c.op << "/" << c.param; }

std::vector<OpCase> all_cases() {
  std::vector<OpCase> out;
  for (const auto& name : op_registry().names())
    for (const auto& param : op_registry().find(name)->example_params)
      for (bool hetero : {false, true}) out.push_back({name, param, hetero});
  return out;
}

// Test names allow letters, digits and '_' only: "qk+convq:4" -> "qk_convq_4".
std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string name = (info.param.hetero ? "hetero_" : "standard_") + info.param.op + "_" + info.param.param;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

class OpContractTest : public ::testing::TestWithParam<OpCase> {
 protected:
  void SetUp() override { torch::manual_seed(0); }
  Architecture arch() const {
    const auto& c = GetParam();
    return c.hetero ? hetero_arch(c.op, c.param) : standard_arch(c.op, c.param);
  }
  FlexModel model(HeadType head = HeadType::kMlm, uint64_t seed = 0) const {
    torch::manual_seed(seed);
    FlexModel m(arch(), tiny_options(head));
    m->eval();
    return m;
  }
};

TEST_P(OpContractTest, ShapeAndFinite) {
  auto [ids, mask] = tiny_batch();
  auto m = model();
  auto out = m->forward(ids, mask);
  EXPECT_EQ(out.hidden.sizes(), (std::vector<int64_t>{2, 7, arch().layers.back().hidden}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 7, 40}));
  EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
  if (!GetParam().hetero) {  // the core alone: [B,T,h] -> [B,T,output_width]
    const OpDefinition& def = *op_registry().find(GetParam().op);
    CoreConfig c;
    c.hidden = 16;
    c.heads = 2;
    c.param = GetParam().param;
    c.max_positions = 16;
    auto core = def.build_core(c);
    core->eval();
    AttentionInputs in;
    in.valid = mask.to(torch::kFloat);
    in.mask_add = (1.0 - in.valid).mul(-10000.0).unsqueeze(1).unsqueeze(1);
    auto y = core->forward(torch::randn({2, 7, 16}), in);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 7, def.core_output_width(c)}));
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
}

TEST_P(OpContractTest, PaddingDoesNotLeak) {
  auto [ids, mask] = tiny_batch();
  auto m = model();
  torch::NoGradGuard no_grad;
  auto base = m->forward(ids, mask).hidden;
  // Other token ids at the padded positions change nothing at the real tokens.
  auto ids2 = ids.clone();
  ids2.index_put_({1, torch::indexing::Slice(4, torch::indexing::None)}, 5);
  auto changed = m->forward(ids2, mask).hidden;
  auto valid = torch::indexing::Slice(0, 4);
  EXPECT_TRUE(torch::allclose(base.index({1, valid}), changed.index({1, valid}), 1e-5, 1e-6));
  // And padding gives the same result as the unpadded sequence alone.
  auto alone = m->forward(ids.index({torch::indexing::Slice(1, 2), valid}), torch::ones({1, 4}, torch::kLong)).hidden;
  EXPECT_TRUE(torch::allclose(base.index({1, valid}), alone[0], 1e-4, 1e-5))
      << (base.index({1, valid}) - alone[0]).abs().max().item<float>();
}

TEST_P(OpContractTest, SeededDeterminism) {
  auto a = model(HeadType::kMlm, 7), b = model(HeadType::kMlm, 7), c = model(HeadType::kMlm, 8);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    if (!torch::equal(item.value(), pc[item.key()])) any_differs = true;
  }
  EXPECT_TRUE(any_differs) << "another seed must give other weights";
  // Training mode (dropout on): the same seed gives the same outputs.
  a->train();
  b->train();
  auto [ids, mask] = tiny_batch();
  torch::manual_seed(3);
  auto ya = a->forward(ids, mask).logits;
  torch::manual_seed(3);
  auto yb = b->forward(ids, mask).logits;
  EXPECT_TRUE(torch::equal(ya, yb));
}

TEST_P(OpContractTest, JsonRoundTrip) {
  const Architecture original = arch();
  const Architecture again = testing::arch_from(original.to_json().dump());
  EXPECT_EQ(original, again);
  EXPECT_EQ(original.to_canonical_string(), again.to_canonical_string());
  const ModelOptions options = tiny_options(HeadType::kToken);
  const ModelOptions back =
      ModelOptions::from_config(ConfigNode::load_string(options.to_json().dump(), "<options>"));
  EXPECT_EQ(options.to_json().dump(), back.to_json().dump());
  // The same model dict builds the same tensors.
  torch::manual_seed(1);
  FlexModel a(original, options);
  torch::manual_seed(1);
  FlexModel b(again, back);
  for (const auto& item : a->named_parameters()) EXPECT_TRUE(torch::equal(item.value(), b->named_parameters()[item.key()]));
}

TEST_P(OpContractTest, ParameterCountFromModelDict) {
  for (HeadType head : {HeadType::kMlm, HeadType::kSequence, HeadType::kToken}) {
    FlexModel m(arch(), tiny_options(head));
    const ModelCost cost = model_cost(arch(), tiny_options(head), 7);
    EXPECT_EQ(cost.total_params, m->num_parameters()) << head_type_name(head);
    EXPECT_GT(cost.total_flops_per_token, 0.0);
  }
}

TEST_P(OpContractTest, EveryParameterIsUsed) {
  auto m = model();
  m->train();
  auto [ids, mask] = tiny_batch();
  auto labels = ids.clone();
  labels.masked_fill_(mask == 0, -100);
  m->loss(ids, mask, labels).backward();
  for (const auto& item : m->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key() << " gets no gradient";
  }
}

INSTANTIATE_TEST_SUITE_P(AllRegisteredOps, OpContractTest, ::testing::ValuesIn(all_cases()), case_name);

TEST(OpRegistry, HoldsTheReferenceTypesAndFeedsTheCatalogue) {
  EXPECT_EQ(op_registry().names(), (std::vector<std::string>{"ak", "c", "l", "sa"}));
  for (const auto& name : op_registry().names()) {
    const OpTypeInfo* info = op_catalog().find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->summary, op_registry().find(name)->summary);  // the registry's entry replaced the built-in
  }
  EXPECT_EQ(op_registry().find("sa")->check_param("sdpa"), "sdp, wma");
  EXPECT_EQ(op_registry().find("c")->check_param("7"), "");
  EXPECT_NE(op_registry().find("c")->check_param("4"), "");
  EXPECT_NE(op_registry().find("c")->check_param("1"), "");
}

}  // namespace
}  // namespace flexnas::models
