// Design-space YAML: the reference files load unchanged, and every kind of mistake is a located
// error that names the file, line, column and key, what was found and what is allowed.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tests/design_space/test_catalog.h"
#include "design_space/design_space.h"

namespace flexnas {
namespace {

const std::string kExamples = FLEXNAS_SOURCE_DIR "/examples/";

TEST(DesignSpace, ReferenceTestSpaceLoads) {
  const DesignSpace sp = load_design_space(kExamples + "design_space_test.yaml", testing::test_catalog());
  EXPECT_EQ(sp.hidden_sizes, (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(sp.op_types, (std::vector<std::string>{"sa", "l", "c"}));
  EXPECT_EQ(sp.op_params[2], (std::vector<std::string>{"5", "9"}));
  EXPECT_EQ(sp.datasets.size(), 9u);
  const std::vector<std::string> ops{"input",         "sa_h128_p-sdp", "sa_h128_p-wma", "sa_h256_p-sdp", "sa_h256_p-wma",
                                     "l_h128_p-dft",  "l_h128_p-dct",  "l_h256_p-dft",  "l_h256_p-dct",  "c_h128_p-5",
                                     "c_h128_p-9",    "c_h256_p-5",    "c_h256_p-9",    "f512",          "f1024",
                                     "add_norm",      "output"};
  EXPECT_EQ(sp.ops_list(), ops);
  // The library stores the `architecture` map as written, integers as integers.
  EXPECT_EQ(sp.architecture_json["operation_parameters"]["c"], nlohmann::ordered_json::parse("[5, 9]"));
  EXPECT_EQ(sp.architecture_json["operation_parameters"]["sa"], nlohmann::ordered_json::parse(R"(["sdp","wma"])"));
}

TEST(DesignSpace, AllReferenceFilesLoad) {
  EXPECT_EQ(load_design_space(kExamples + "design_space_small.yaml", testing::test_catalog()).ops_list().size(), 20u);
  EXPECT_EQ(load_design_space(kExamples + "design_space.yaml", testing::test_catalog()).ops_list().size(), 28u);
}

const char* kGood = R"(architecture:
  hidden_size: [128, 256]
  num_heads: [2, 4]
  encoder_layers: [2, 4]
  operation_types: [sa, l, c]
  number_of_feed-forward_stacks: [1, 3]
  feed-forward_hidden: [512, 1024]
  operation_parameters:
    sa: [sdp, wma]
    l: [dft, dct]
    c: [5, 9]
)";

/// Replaces the first occurrence of `from` in the good file and returns the loader's message.
std::string error_for(const std::string& from, const std::string& to, const std::string& base = kGood) {
  std::string text = base;
  const auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  try {
    parse_design_space(text, "ds.yaml", testing::test_catalog());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DesignSpace, GoodTextLoads) { EXPECT_NO_THROW(parse_design_space(kGood, "ds.yaml", testing::test_catalog())); }

TEST(DesignSpaceErrors, UnknownTopLevelKey) {
  EXPECT_EQ(error_for("architecture:", "architectur:"),
            "ds.yaml:1:1: error: architectur: unknown key 'architectur' (expected one of: architecture, constraints, "
            "datasets, enumeration)");
}

TEST(DesignSpaceErrors, MissingArchitecture) {
  EXPECT_EQ(error_for(kGood, "datasets: [CoLA]\n"), "ds.yaml:1:1: error: missing required key 'architecture'");
}

TEST(DesignSpaceErrors, UnknownArchitectureKey) {
  EXPECT_EQ(error_for("  num_heads:", "  num_head:"),
            "ds.yaml:3:3: error: architecture.num_head: unknown key 'num_head' (expected one of: encoder_layers, "
            "feed-forward_hidden, hidden_size, num_heads, number_of_feed-forward_stacks, operation_parameters, "
            "operation_types, pooling, share)");
}

TEST(DesignSpaceErrors, MissingArchitectureKey) {
  EXPECT_EQ(error_for("  feed-forward_hidden: [512, 1024]\n", ""),
            "ds.yaml:2:3: error: architecture: missing required key 'feed-forward_hidden'");
}

TEST(DesignSpaceErrors, WrongType) {
  EXPECT_EQ(error_for("hidden_size: [128, 256]", "hidden_size: [128, sixty-four]"),
            "ds.yaml:2:22: error: architecture.hidden_size[1]: expected an integer, got 'sixty-four'");
  EXPECT_EQ(error_for("num_heads: [2, 4]", "num_heads: 4"),
            "ds.yaml:3:14: error: architecture.num_heads: expected a list, got '4'");
}

TEST(DesignSpaceErrors, EmptyList) {
  EXPECT_EQ(error_for("encoder_layers: [2, 4]", "encoder_layers: []"),
            "ds.yaml:4:19: error: architecture.encoder_layers: expected a non-empty list of integers, got an empty list");
}

TEST(DesignSpaceErrors, DuplicateValue) {
  EXPECT_EQ(error_for("hidden_size: [128, 256]", "hidden_size: [128, 128]"),
            "ds.yaml:2:22: error: architecture.hidden_size[1]: duplicate value 128 (each value may appear once)");
  EXPECT_EQ(error_for("sa: [sdp, wma]", "sa: [sdp, sdp]"),
            "ds.yaml:9:15: error: architecture.operation_parameters.sa[1]: duplicate value 'sdp' (each value may appear "
            "once)");
}

TEST(DesignSpaceErrors, NonPositiveValue) {
  EXPECT_EQ(error_for("feed-forward_hidden: [512, 1024]", "feed-forward_hidden: [512, -1024]"),
            "ds.yaml:7:30: error: architecture.feed-forward_hidden[1]: expected a positive integer, got -1024");
}

TEST(DesignSpaceErrors, UnknownOperationType) {
  EXPECT_EQ(error_for("operation_types: [sa, l, c]", "operation_types: [sa, lstm, c]"),
            "ds.yaml:5:25: error: architecture.operation_types[1]: unknown operation type 'lstm' (registered: c, l, sa)");
}

TEST(DesignSpaceErrors, UnknownParameter) {
  EXPECT_EQ(error_for("sa: [sdp, wma]", "sa: [sdp, wmaa]"),
            "ds.yaml:9:15: error: architecture.operation_parameters.sa[1]: unknown parameter 'wmaa' for operation type "
            "'sa' (allowed: sdp, wma)");
  EXPECT_EQ(error_for("c: [5, 9]", "c: [5, 8]"),
            "ds.yaml:11:12: error: architecture.operation_parameters.c[1]: unknown parameter '8' for operation type 'c' "
            "(allowed: an odd kernel size >= 3 such as 5, 9 or 13)");
}

TEST(DesignSpaceErrors, ParametersForUnlistedOrMissingOpType) {
  EXPECT_EQ(error_for("operation_types: [sa, l, c]", "operation_types: [sa, l]"),
            "ds.yaml:11:8: error: architecture.operation_parameters.c: operation type 'c' is not listed in "
            "architecture.operation_types (listed: sa, l)");
  EXPECT_EQ(error_for("    l: [dft, dct]\n", ""),
            "ds.yaml:9:5: error: architecture.operation_parameters: missing parameters for operation type 'l'");
}

TEST(DesignSpaceErrors, HeadsMustDivideHiddenSizes) {
  EXPECT_EQ(error_for("num_heads: [2, 4]", "num_heads: [2, 3]"),
            "ds.yaml:3:18: error: architecture.num_heads[1]: num_heads = 3 must divide every hidden_size (128 is not "
            "divisible)");
}

TEST(DesignSpaceErrors, LayersPerStackInEnumerationBlock) {
  const std::string with_block = std::string(kGood) + "enumeration:\n  layers_per_stack: 3\n";
  EXPECT_EQ(error_for("encoder_layers: [2, 4]", "encoder_layers: [2, 4]", with_block),
            "ds.yaml:4:20: error: architecture.encoder_layers[0]: encoder_layers value 2 is not divisible by "
            "layers_per_stack = 3 (every depth must be a whole number of stacks)");
  const std::string typo = std::string(kGood) + "enumeration:\n  layer_per_stack: 2\n";
  EXPECT_EQ(error_for("enumeration:", "enumeration:", typo),
            "ds.yaml:13:3: error: enumeration.layer_per_stack: unknown key 'layer_per_stack' (expected one of: "
            "heterogeneous_feed_forward, increasing, layers_per_stack)");
  const std::string bad_bool = std::string(kGood) + "enumeration:\n  increasing: maybe\n";
  EXPECT_EQ(error_for("enumeration:", "enumeration:", bad_bool),
            "ds.yaml:13:15: error: enumeration.increasing: expected true or false, got 'maybe'");
}

TEST(DesignSpaceErrors, InvalidYamlSyntax) {
  EXPECT_EQ(error_for("hidden_size: [128, 256]", "hidden_size: [128, 256"),
            "ds.yaml:3:12: error: invalid YAML/JSON: end of sequence flow not found");
}

TEST(DesignSpaceErrors, MissingFile) {
  try {
    load_design_space("/nonexistent/ds.yaml", testing::test_catalog());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/ds.yaml: error: cannot open file: No such file or directory");
  }
}

TEST(DesignSpaceErrors, ConstraintsBlock) {
  const std::string text = std::string(kGood) + "constraints:\n  max_parameters: -5\n";
  EXPECT_EQ(error_for("enumeration", "enumeration", text + "# enumeration\n"),
            "ds.yaml:13:19: error: constraints.max_parameters: must be >= 0 (0 = no limit)");
}

}  // namespace
}  // namespace flexnas
