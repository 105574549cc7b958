// The contract every registered operation type meets, in both model-dict formats: output shape,
// finiteness, masking (padding neither leaks nor changes results), seeded determinism, JSON round
// trip, parameter and FLOP counts (registry = built module = measured), every parameter used, and
// design-space checks that agree with the registry. A new op file gets all of these without
// writing a test.
#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <map>

#include "design_space/config_node.h"
#include "design_space/design_space.h"
#include "design_space/distance.h"
#include "models/op_catalog.h"
#include "models/op_registry.h"
#include "tests/design_space/test_catalog.h"
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

int64_t numel_of(const std::vector<torch::Tensor>& params) {
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  return n;
}

// The registry's counts against the module it builds: the core (standard) or head (hetero) alone.
TEST_P(OpContractTest, RegistryParametersEqualTheBuiltModule) {
  const OpDefinition& def = *op_registry().find(GetParam().op);
  if (!GetParam().hetero) {
    for (int64_t heads : {1, 2, 4}) {
      CoreConfig c;
      c.hidden = 16, c.heads = heads, c.param = GetParam().param, c.max_positions = 16;
      EXPECT_EQ(def.core_params(c), numel_of(def.build_core(c)->parameters())) << "heads " << heads;
    }
  } else {
    for (int64_t dim : {4, 8}) {
      HeadConfig c;
      c.param = GetParam().param, c.dim = dim, c.max_positions = 16;
      EXPECT_EQ(def.head_params(c), numel_of(def.build_head(c)->parameters())) << "dim " << dim;
    }
  }
}

/// FLOPs of one ATen call priced from its operands' shapes (2 per multiply-add), or -1 when it is
/// not a matrix product: aten::mm, addmm, bmm, baddbmm, convolution (1-D), and the marked scope
/// flexnas::dynamic_conv (a windowed multiply-sum, models/attention_common.cpp: 2·B·T·C·k).
double price(const at::RecordFunction& f) {
  const std::string name = f.name();
  const auto in = f.inputs();
  auto sizes = [&](size_t i) { return in[i].toTensor().sizes(); };
  if (name == "aten::mm") return 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(1)[1];
  if (name == "aten::addmm") return 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(2)[1];
  if (name == "aten::bmm") return 2.0 * sizes(0)[0] * sizes(0)[1] * sizes(0)[2] * sizes(1)[2];
  if (name == "aten::baddbmm") return 2.0 * sizes(1)[0] * sizes(1)[1] * sizes(1)[2] * sizes(2)[2];
  if (name == "aten::convolution") {  // input [B,C,L], weight [O,C/g,k]
    const auto x = sizes(0), w = sizes(1);
    const auto stride = in[3].toIntVector(), pad = in[4].toIntVector(), dil = in[5].toIntVector();
    EXPECT_EQ(x.size(), 3u) << "only 1-D convolutions are priced";
    const int64_t out_len = (x[2] + 2 * pad[0] - dil[0] * (w[2] - 1) - 1) / stride[0] + 1;
    return 2.0 * x[0] * w[0] * out_len * w[1] * w[2];
  }
  if (name == "flexnas::dynamic_conv") return 2.0 * double(in[0].toTensor().numel()) * double(in[1].toTensor().size(-1));
  return -1;
}

struct FlopCounter {
  double flops = 0;
  int depth = 0;  // counted calls open: a call nested in one (a convolution's own mm) is not counted
};
thread_local FlopCounter* flop_counter = nullptr;
struct Counted : at::ObserverContext {};

/// FLOPs measured while `fn` runs: a RecordFunction observer sees every ATen call and prices the
/// matrix products (price). The registry counts the same things (matmuls and convolutions only:
/// softmax, norms and element-wise ops are left out on both sides).
double measured_flops(const std::function<void()>& fn) {
  FlopCounter local;
  flop_counter = &local;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& f) -> std::unique_ptr<at::ObserverContext> {
            const double flops = price(f);
            if (flops < 0) return nullptr;
            if (flop_counter->depth++ == 0) flop_counter->flops += flops;
            return std::make_unique<Counted>();
          },
          [](const at::RecordFunction&, at::ObserverContext* ctx) {
            if (ctx) --flop_counter->depth;
          })
          .needsInputs(true));
  fn();
  at::removeCallback(handle);
  flop_counter = nullptr;
  return local.flops;
}

// The registry's FLOPs against a measured count on a tiny input: one unpadded sequence of 7 tokens.
TEST_P(OpContractTest, RegistryFlopsEqualAMeasuredCount) {
  torch::NoGradGuard no_grad;
  const int64_t T = 7;
  const OpDefinition& def = *op_registry().find(GetParam().op);
  AttentionInputs in;
  in.valid = torch::ones({1, T});
  in.mask_add = torch::zeros({1, 1, 1, T});
  if (!GetParam().hetero) {
    for (int64_t heads : {1, 2, 4}) {
      CoreConfig c;
      c.hidden = 16, c.heads = heads, c.param = GetParam().param, c.max_positions = 16;
      auto core = def.build_core(c);
      core->eval();
      const auto x = torch::randn({1, T, 16});
      EXPECT_DOUBLE_EQ(measured_flops([&] { core->forward(x, in); }), def.core_flops(c, T) * T) << "heads " << heads;
    }
  } else {
    HeadConfig c;
    c.param = GetParam().param, c.dim = 8, c.max_positions = 16;
    auto head = def.build_head(c);
    head->eval();
    HeadInputs h{torch::randn({1, T, 8}), torch::randn({1, T, 8}), torch::randn({1, T, 8}), torch::randn({1, T, T})};
    EXPECT_DOUBLE_EQ(measured_flops([&] { head->forward(h, in); }), def.head_flops(c, T) * T);
  }
  // The whole model: model_cost (the registry's counts plus the layer layout and the MLM head).
  auto m = model();
  const auto ids = torch::randint(1, 40, {1, T});
  const double measured = measured_flops([&] { m->forward(ids, torch::ones({1, T}, torch::kLong)); });
  EXPECT_DOUBLE_EQ(measured, model_cost(arch(), tiny_options(), T).total_flops_per_token * T);
}

INSTANTIATE_TEST_SUITE_P(AllRegisteredOps, OpContractTest, ::testing::ValuesIn(all_cases()), case_name);

TEST(OpRegistry, HoldsTheReferenceTypes) {
  EXPECT_EQ(op_registry().names(), (std::vector<std::string>{"ak", "c", "l", "sa"}));
  EXPECT_EQ(models::op_catalog().names(), op_registry().names());
  EXPECT_EQ(op_registry().find("sa")->check_param("sdpa"), "sdp, wma");
  EXPECT_EQ(op_registry().find("c")->check_param("7"), "");
  EXPECT_NE(op_registry().find("c")->check_param("4"), "");
  EXPECT_NE(op_registry().find("c")->check_param("1"), "");
}

// The design-space side accepts and rejects exactly what the registry does, for every registered op:
// the real catalogue (models::op_catalog(), what the CLI passes), a design space parsed with it, and
// the design_space tests' stand-in catalogue for the types it knows.
TEST(OpRegistry, DesignSpaceChecksAgreeWithTheRegistry) {
  const OpCatalog& real = models::op_catalog();
  const OpCatalog& stand_in = flexnas::testing::test_catalog();
  for (const std::string& name : stand_in.names()) EXPECT_TRUE(op_registry().find(name)) << name;
  for (const std::string& name : op_registry().names()) {
    const OpDefinition& def = *op_registry().find(name);
    EXPECT_FALSE(def.example_params.empty()) << name;
    EXPECT_FALSE(def.invalid_params.empty()) << name << ": list parameters check_param rejects";
    auto space_with = [&](const std::string& param) {
      return "architecture:\n  hidden_size: [16]\n  num_heads: [2]\n  encoder_layers: [2]\n  operation_types: [" + name +
             "]\n  number_of_feed-forward_stacks: [1]\n  feed-forward_hidden: [32]\n  operation_parameters:\n    " +
             name + ": ['" + param + "']\n";
    };
    for (const std::string& p : def.example_params) {
      EXPECT_EQ(def.check_param(p), "") << name << " " << p;
      EXPECT_EQ(real.check_param(name, p), "") << name << " " << p;
      if (stand_in.has(name)) {
        EXPECT_EQ(stand_in.check_param(name, p), "") << name << " " << p;
      }
      EXPECT_NO_THROW(parse_design_space(space_with(p), "ds.yaml", real)) << name << " " << p;
    }
    for (const std::string& p : def.invalid_params) {
      EXPECT_NE(def.check_param(p), "") << name << " '" << p << "'";
      EXPECT_EQ(real.check_param(name, p), def.check_param(p)) << name << " '" << p << "'";
      if (stand_in.has(name)) {
        EXPECT_NE(stand_in.check_param(name, p), "") << name << " '" << p << "'";
      }
      try {
        parse_design_space(space_with(p), "ds.yaml", real);
        ADD_FAILURE() << name << " '" << p << "' accepted by the design space";
      } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("ds.yaml:9:"), std::string::npos) << e.what();  // located
        if (!p.empty()) {
          EXPECT_NE(std::string(e.what()).find("(allowed: " + def.check_param(p) + ")"), std::string::npos) << e.what();
        }
      }
    }
  }
  EXPECT_NE(real.check_param("c", "1"), "");  // the old built-in list accepted a kernel of 1
}

}  // namespace
}  // namespace flexnas::models

namespace flexnas::models {
namespace {

std::map<std::string, std::vector<int64_t>> shapes_of(const ParamLayout& layout) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const LayoutTensor& t : layout.tensors) {
    std::vector<int64_t> shape;
    for (const LayoutAxis& a : t.axes) shape.push_back(a.size);
    out[t.name] = shape;
  }
  return out;
}

std::vector<std::string> names_of(const ParamLayout& layout) {
  std::vector<std::string> out;
  for (const LayoutTensor& t : layout.tensors) out.push_back(t.name);
  return out;
}

// core_layout / head_layout (what weight transfer reads) name every parameter of the built core or
// head once, with its shape; the core's output axis is its output width.
TEST(OpRegistry, LayoutsDescribeTheBuiltModules) {
  for (const std::string& name : op_registry().names()) {
    const OpDefinition& def = *op_registry().find(name);
    for (const std::string& p : def.example_params) {
      for (const auto& [hidden, heads] : std::vector<std::pair<int64_t, int64_t>>{{16, 2}, {24, 3}, {16, 1}, {32, 4}}) {
        CoreConfig c;
        c.hidden = hidden;
        c.heads = heads;
        c.param = p;
        c.max_positions = 16;
        if (!def.check_core(c).empty()) continue;
        const CoreLayout layout = def.core_layout(c);
        std::map<std::string, std::vector<int64_t>> built;
        for (const auto& t : def.build_core(c)->named_parameters()) built[t.key()] = t.value().sizes().vec();
        EXPECT_EQ(names_of(layout).size(), built.size()) << name << " " << p << " n=" << heads;  // no duplicates
        EXPECT_EQ(shapes_of(layout), built) << name << " " << p << " n=" << heads;
        EXPECT_EQ(layout.output.size, def.core_output_width(c)) << name << " " << p << " n=" << heads;
      }
      HeadConfig h;
      h.param = p;
      h.dim = 8;
      h.max_positions = 16;
      const ParamLayout layout = def.head_layout(h);
      std::map<std::string, std::vector<int64_t>> built;
      for (const auto& t : def.build_head(h)->named_parameters()) built[t.key()] = t.value().sizes().vec();
      EXPECT_EQ(names_of(layout).size(), built.size()) << name << " " << p;
      EXPECT_EQ(shapes_of(layout), built) << name << " " << p;
    }
  }
}

// The operation vocabulary's order (design_space/distance.cpp) from the registry: the stand-in
// catalogue of the design_space tests gives the same answers for l, sa, c; other types rank after
// the reference's three; and the cost table ordered by the registry equals the built-in order that
// callers without a catalogue get, so distances and embeddings do not depend on which they use.
TEST(OpRegistry, VocabularyOrderAgreesWithTheStandInAndTheBuiltInOrder) {
  const OpCatalog& real = models::op_catalog();
  const OpCatalog& stand_in = flexnas::testing::test_catalog();
  std::vector<std::string> labels;
  for (const std::string& name : op_registry().names()) {
    const OpDefinition& def = *op_registry().find(name);
    if (stand_in.has(name)) {
      EXPECT_EQ(real.order_rank(name), stand_in.order_rank(name)) << name;
      for (const auto* list : {&def.example_params, &def.invalid_params})
        for (const std::string& p : *list) EXPECT_EQ(real.param_order(name, p), stand_in.param_order(name, p)) << name << " " << p;
    } else {
      EXPECT_GT(real.order_rank(name), 2) << name << ": new types sort after the reference's l, sa, c";
    }
    for (const std::string& p : def.example_params)
      for (int64_t h : {128, 64}) {
        labels.push_back(name + "_h" + std::to_string(h) + "_p-" + p);
        labels.push_back(name + "_" + p + "_" + std::to_string(h / 2));
      }
  }
  for (const char* extra : {"sa_h128_p-wma", "sa_h128_p-sdp", "l_h64_p-dct", "l_h64_p-dft", "c_h64_p-13", "c_h64_p-9",
                            "c_h64_p-05", "ak_h64_p-qk+convq:10", "ak_h64_p-convk:10", "f512", "f64"})
    labels.push_back(extra);
  EXPECT_EQ(OpCostTable(labels, &real).order(), OpCostTable(labels).order());
  std::reverse(labels.begin(), labels.end());
  EXPECT_EQ(OpCostTable(labels, &real).order(), OpCostTable(labels).order());
  std::vector<std::string> reference_labels;  // the stand-in's types only (it does not know the others)
  for (const std::string& label : labels)
    if (stand_in.has(label.substr(0, label.find('_'))) || label[0] == 'f') reference_labels.push_back(label);
  EXPECT_EQ(OpCostTable(reference_labels, &stand_in).order(), OpCostTable(reference_labels).order());
}

}  // namespace
}  // namespace flexnas::models
