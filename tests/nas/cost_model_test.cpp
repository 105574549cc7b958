// nas/cost_model asks the models' one cost source: the parameter count is the built model's (base
// model of a sequence task + pooler, no classifier) for every op type, both formats and Funnel
// pooling; and design-space constraints priced by models::op_catalog() keep exactly the
// architectures within the limit (checked by pricing the unconstrained space).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/enumeration.h"
#include "design_space/error.h"
#include "models/flex_model.h"
#include "models/op_catalog.h"
#include "nas/cost_model.h"

namespace flexnas::nas {
namespace {

Architecture arch_from(const std::string& json) { return architecture_from_json(nlohmann::json::parse(json), "test"); }

TEST(CostModel, BertTinyMatchesTheBuiltModel) {
  const Architecture tiny =
      arch_from(R"({"l":2,"h":[128,128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})");
  CostSettings s;
  s.vocab_size = 50265;
  // FLEXIBERT_NUMBERS.md's fork count (7,052,800) less what the fork allocates and flexnas does not:
  // the absolute position table (514 x 128) and a d x d wma matrix in each sdp layer (2 x 64 x 64).
  EXPECT_EQ(estimate_cost(tiny, s).parameters, 7052800 - 514 * 128 - 2 * 64 * 64);
  Architecture wide = tiny;
  wide.layers[1].hidden = 256;
  EXPECT_GT(estimate_cost(wide, s).parameters, estimate_cost(tiny, s).parameters);
  EXPECT_GT(estimate_cost(wide, s).flops_per_token, estimate_cost(tiny, s).flops_per_token);
}

// Every op type in both formats, Funnel pooling too: parameters = the built sequence model's less
// its classifier (h x K + K); the FLOPs are model_cost's without the head.
TEST(CostModel, EveryOpEqualsTheBuiltModel) {
  const std::vector<std::string> dicts = {
      R"({"l":2,"h":[32,48],"n":[2,4],"o":["sa","sa"],"f":[[64],[64,32]],"p":["sdp","wma"]})",
      R"({"l":2,"h":[32,32],"n":[2,1],"o":["l","c"],"f":[[64],[64]],"p":["dft",5]})",
      R"({"l":2,"h":[32,32],"n":[4,2],"o":["ak","ak"],"f":[[64],[64]],"p":["qk+convfixed+convq+convk+vconv+qkconv:4","convfixed:3"]})",
      R"({"l":2,"h":[32,32],"f":[[64],[64]],"o":[["sa_sdp_8","l_dct_8","c_3_8","ak_convq:2_8"],["sa_wma_16","ak_qk_16"]]})",
      R"({"l":4,"h":[32,32,32,32],"n":[2,2,2,2],"o":["sa","sa","l","sa"],"f":[[64],[64],[64],[64]],"p":["sdp","sdp","dct","wma"],"pool":{"stride":[1,1,2,1],"q_only":true,"separate_cls":true,"decoder":2}})",
  };
  CostSettings s;
  s.vocab_size = 100;
  s.max_positions = 64;
  s.sequence_length = 32;
  for (const std::string& json : dicts) {
    const Architecture arch = arch_from(json);
    models::ModelOptions o;
    o.vocab_size = 100;
    o.max_positions = 64;
    o.head = models::HeadType::kSequence;
    o.num_labels = 2;
    models::FlexModel model(arch, o);
    const int64_t h = arch.layers.back().hidden;
    const ModelCost cost = estimate_cost(arch, s);
    EXPECT_EQ(cost.parameters, model->num_parameters() - (h * 2 + 2)) << json;
    const models::ModelCost full = models::model_cost(arch, o, 32);
    EXPECT_DOUBLE_EQ(cost.flops_per_token, full.total_flops_per_token - full.blocks.back().flops_per_token) << json;
    s.include_pooler = false;
    EXPECT_EQ(estimate_cost(arch, s).parameters, cost.parameters - (h * h + h)) << json;
    s.include_pooler = true;
  }
}

// The CLI's catalogue prices what a campaign reports: OpCatalog::cost = estimate_cost's defaults.
TEST(CostModel, TheCatalogueCountsWhatTrialsReport) {
  const Architecture a = arch_from(R"({"l":2,"h":[128,256],"n":[2,4],"o":["c","l"],"f":[[512],[1024]],"p":[9,"dct"]})");
  EXPECT_EQ(models::op_catalog().cost(a).parameters, estimate_cost(a).parameters);
  EXPECT_DOUBLE_EQ(models::op_catalog().cost(a).flops_per_token, estimate_cost(a).flops_per_token);
}

// tests/data/cli/constrained_space.yaml: its count (tests/cli pins the same number) and order equal
// pricing every architecture of the unconstrained space with estimate_cost.
TEST(Constraints, MaxParametersWithTheModelsCount) {
  const std::string path = std::string(FLEXNAS_SOURCE_DIR) + "/tests/data/cli/constrained_space.yaml";
  const DesignSpace constrained = load_design_space(path, models::op_catalog());
  ASSERT_EQ(constrained.constraints.max_parameters, 5000000);
  DesignSpace open = constrained;
  open.constraints.max_parameters = 0;
  const Enumerator all(open, constrained.enumeration), within(constrained, constrained.enumeration);
  ASSERT_EQ(all.count(), BigCount(9312));
  std::vector<Architecture> expected;
  for (BigCount i = 0; i < all.count(); ++i)
    if (estimate_cost(all.at(i)).parameters <= 5000000) expected.push_back(all.at(i));
  ASSERT_EQ(within.count(), BigCount(expected.size()));
  EXPECT_EQ(within.count(), BigCount(168));
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(within.at(BigCount(i)), expected[i]) << i;
}

}  // namespace
}  // namespace flexnas::nas
