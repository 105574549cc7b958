// Model dicts: both reference formats and NAS-Bench-BERT records read, canonical JSON written
// in the reference's key order, and bad dicts rejected with located messages.
#include <gtest/gtest.h>

#include "design_space/arch_graph.h"
#include "design_space/architecture.h"

namespace flexnas {
namespace {

Architecture parse(const std::string& json) { return architecture_from_config(ConfigNode::load_string(json, "arch.json")); }

std::string error_for(const std::string& json) {
  try {
    parse(json);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Architecture, StandardCanonicalFormKeepsReferenceKeyOrder) {
  // Keys in another order, conv parameters as integers.
  const Architecture a = parse(R"({"o":["c","sa"],"l":2,"p":[9,"wma"],"n":[2,4],"h":[128,256],"f":[[512],[1024,1024]]})");
  EXPECT_EQ(a.format, ArchFormat::kStandard);
  EXPECT_EQ(a.layers[0].param, "9");
  EXPECT_EQ(a.to_canonical_string(),
            R"({"l":2,"h":[128,256],"n":[2,4],"o":["c","sa"],"f":[[512],[1024,1024]],"p":[9,"wma"]})");
  EXPECT_EQ(parse(a.to_canonical_string()), a);
}

TEST(Architecture, HeteroFormat) {
  const Architecture a =
      parse(R"({"l":2,"o":[["sa_sdp_64","l_dft_64"],["c_9_32","sa_wma_32","sa_sdp_32"]],"h":[128,128],"f":[[512],[512,512]]})");
  ASSERT_TRUE(a.is_hetero());
  EXPECT_EQ(a.layers[1].num_heads(), 3);
  EXPECT_EQ(a.layers[1].head_list[0], (HeadSpec{"c", "9", 32}));
  EXPECT_EQ(a.to_canonical_string(),
            R"({"l":2,"h":[128,128],"f":[[512],[512,512]],"o":[["sa_sdp_64","l_dft_64"],["c_9_32","sa_wma_32","sa_sdp_32"]]})");
  EXPECT_EQ(parse(a.to_canonical_string()), a);
}

TEST(Architecture, NasBenchBertRecord) {
  const Architecture a = parse(R"({"id": 0, "scores": {"glue": 74.7}, "hparams": {"model_hparam_overrides": {
      "hidden_size": 256, "nas_config": {"encoder_layers": [
        {"operation_type": "SA", "operation_parameter": "WMA", "num_operation_heads": 4, "feed_forward_dimension": 1024, "num_feed_forward": 3},
        {"operation_type": "DSC", "operation_parameter": 9, "num_operation_heads": 2, "feed_forward_dimension": 512, "num_feed_forward": 1}]}}}})");
  EXPECT_EQ(a.to_canonical_string(),
            R"({"l":2,"h":[256,256],"n":[4,2],"o":["sa","c"],"f":[[1024,1024,1024],[512]],"p":["wma",9]})");
}

TEST(Architecture, PythonReprs) {
  EXPECT_EQ(python_list_repr(std::vector<int64_t>{128, 128}), "[128, 128]");
  EXPECT_EQ(python_list_repr(std::vector<std::vector<int64_t>>{{512}, {512, 512}}), "[[512], [512, 512]]");
}

TEST(ArchitectureErrors, Messages) {
  EXPECT_EQ(error_for(R"({"l":2,"h":[128],"n":[2,2],"o":["sa","sa"],"f":[[512],[512]],"p":["sdp","sdp"]})"),
            "arch.json:1:12: error: h: expected 2 entries (one per layer, l = 2), got 1");
  EXPECT_EQ(error_for(R"({"l":1,"h":[128],"n":[2],"o":["sa"],"f":[[512]],"p":["sdp"],"x":1})"),
            "arch.json:1:61: error: x: unknown key 'x' (expected one of: f, h, l, n, o, p, pool, share)");
  EXPECT_EQ(error_for(R"({"l":1,"h":[0],"n":[2],"o":["sa"],"f":[[512]],"p":["sdp"]})"),
            "arch.json:1:13: error: h[0]: hidden size must be a positive integer, got 0");
  EXPECT_EQ(error_for(R"({"l":1,"h":[128],"n":[2],"o":["sa"],"f":[[]],"p":["sdp"]})"),
            "arch.json:1:42: error: f[0]: expected a non-empty list of integers, got an empty list");
  EXPECT_EQ(error_for(R"({"l":1,"h":[128],"o":[["sa_sdp_64","l_dft_32"]],"f":[[512]]})"),
            "arch.json:1:36: error: o[0][1]: all heads of a layer must share one head dimension: got 32 after 64");
  EXPECT_EQ(error_for(R"({"l":1,"h":[128],"o":[["sa-sdp-64"]],"f":[[512]]})"),
            "arch.json:1:24: error: o[0][0]: expected a head string '<type>_<param>_<dim>' such as 'sa_sdp_64', got "
            "'sa-sdp-64'");
  EXPECT_EQ(error_for(R"({"l":1,"h":[128],"n":[2],"o":["sa"],"f":[[512]]})"),
            "arch.json:1:1: error: missing required key 'p' (a standard model dict has keys l, h, n, o, f, p; a hetero "
            "one has l, h, f and per-layer lists of head strings in o)");
  EXPECT_EQ(error_for("[1, 2]"),
            "arch.json:1:1: error: expected a model dict (a map with keys l, h, n, o, f, p or l, h, f, o), got a list");
  EXPECT_EQ(error_for(R"({"l":"two","h":[128],"n":[2],"o":["sa"],"f":[[512]],"p":["sdp"]})"),
            "arch.json:1:6: error: l: expected an integer, got 'two'");
}

}  // namespace
}  // namespace flexnas
