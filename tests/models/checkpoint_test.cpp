// Checkpoints and safetensors: round trips, and clear errors for corrupt or mismatched files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "design_space/arch_graph.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "models/checkpoint.h"
#include "models/safetensors.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {
namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    dir_ = fs::temp_directory_path() /
           ("flexnas_ckpt_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string expect_config_error(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError";
    return "";
  }
  fs::path dir_;
};

TEST_F(CheckpointTest, SafetensorsRoundTripWithDtypesAndMetadata) {
  NamedTensors tensors = {{"b.float", torch::randn({3, 4})},
                          {"a.long", torch::arange(5, torch::kLong)},
                          {"c.double", torch::randn({2}, torch::kDouble)},
                          {"d.scalar", torch::tensor(3.5f)},
                          {"e.empty", torch::zeros({0, 4})}};
  write_safetensors(path("t.safetensors"), tensors, {{"format", "pt"}});
  std::map<std::string, std::string> meta;
  auto back = read_safetensors(path("t.safetensors"), &meta);
  EXPECT_EQ(meta.at("format"), "pt");
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
  // The layout: 8-byte little-endian length, then a JSON header padded to 8 bytes.
  const std::string bytes = read_file(path("t.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t((unsigned char)bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.substr(8, 15), R"({"__metadata__")");
  EXPECT_NE(bytes.find(R"("a.long":{"dtype":"I64","shape":[5],"data_offsets":[0,40]})"), std::string::npos);
}

TEST_F(CheckpointTest, ModelRoundTripKeepsOutputsAndConfig) {
  const auto arch = testing::hetero_arch("c", "3");
  FlexModel model(arch, testing::tiny_options(HeadType::kToken));
  model->eval();
  write_file_atomic(path("spm.model"), "tokenizer bytes");
  save_checkpoint(path("ckpt"), *model, path("spm.model"));
  CheckpointConfig config;
  FlexModel back = load_checkpoint(path("ckpt"), torch::kCPU, &config);
  back->eval();
  EXPECT_EQ(config.arch, arch);
  EXPECT_EQ(config.options.to_json().dump(), model->options().to_json().dump());
  EXPECT_EQ(config.tokenizer_file, path("spm.model"));
  EXPECT_EQ(config.tokenizer_sha256, sha256_hex("tokenizer bytes"));
  auto [ids, mask] = testing::tiny_batch();
  EXPECT_TRUE(torch::equal(model->forward(ids, mask).logits, back->forward(ids, mask).logits));
  write_metrics(path("ckpt"), {{"dev_accuracy", 0.5}});
  EXPECT_EQ(read_metrics(path("ckpt"))["dev_accuracy"].get<double>(), 0.5);
  EXPECT_TRUE(read_metrics(path("nothing")).empty());
}

TEST_F(CheckpointTest, FineTuningLoadsTheBaseAndAFreshHead) {
  const auto arch = testing::standard_arch("l", "dct");
  FlexModel mlm(arch, testing::tiny_options(HeadType::kMlm));
  save_checkpoint(path("ckpt"), *mlm);
  ModelOptions cls = testing::tiny_options(HeadType::kSequence);
  cls.hidden_dropout = 0.2;
  CheckpointConfig config;
  FlexModel model = load_checkpoint(path("ckpt"), torch::kCPU, &config, &cls);
  EXPECT_EQ(config.options.head, HeadType::kSequence);
  EXPECT_EQ(model->options().hidden_dropout, 0.2);
  auto src = mlm->named_parameters();
  for (const auto& item : model->named_parameters())
    if (item.key().rfind("bert.", 0) == 0 && item.key().rfind("bert.pooler", 0) != 0)
      EXPECT_TRUE(torch::equal(item.value(), src[item.key()])) << item.key();
}

TEST_F(CheckpointTest, CorruptAndMismatchedFilesNameTheFileAndTensor) {
  const auto arch = testing::standard_arch("sa", "wma");
  FlexModel model(arch, testing::tiny_options());
  save_checkpoint(path("ckpt"), *model);
  const std::string weights = path("ckpt/model.safetensors");
  const std::string good = read_file(weights);

  // Truncated data.
  write_file_atomic(weights, good.substr(0, good.size() - 100));
  std::string msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_NE(msg.find(weights + ": error: tensor '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(truncated file?)"), std::string::npos) << msg;

  // Header length beyond the file, and a file shorter than 8 bytes.
  write_file_atomic(weights, std::string("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10));
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg, weights + ": error: header length 65535 exceeds the file size 10 (truncated or not a safetensors file)");
  write_file_atomic(weights, "abc");
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg, weights + ": error: not a safetensors file: 3 bytes, shorter than the 8-byte header length");

  // Header that is not JSON.
  write_file_atomic(weights, std::string("\x04\x00\x00\x00\x00\x00\x00\x00{oops", 13));
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg.rfind(weights + ": error: bad header: invalid JSON", 0), 0u) << msg;

  // A missing tensor.
  NamedTensors tensors;
  for (const auto& item : model->named_parameters())
    if (item.key() != "bert.encoder.layer.0.attention.self.wma") tensors.emplace_back(item.key(), item.value());
  write_safetensors(weights, tensors);
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg, weights + ": error: tensor 'bert.encoder.layer.0.attention.self.wma': missing from the file (the model needs shape [8, 8])");

  // A wrong shape.
  tensors.emplace_back("bert.encoder.layer.0.attention.self.wma", torch::zeros({4, 8}));
  write_safetensors(weights, tensors);
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg, weights + ": error: tensor 'bert.encoder.layer.0.attention.self.wma': shape [4, 8] in the file, the model expects [8, 8]");

  // A tensor the model does not have.
  tensors.back().second = torch::zeros({8, 8});
  tensors.emplace_back("bert.embeddings.position_embeddings.weight", torch::zeros({514, 16}));
  write_safetensors(weights, tensors);
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_EQ(msg, weights + ": error: tensor 'bert.embeddings.position_embeddings.weight': in the file but not in the model (another architecture or head?)");

  // A config.json that does not describe a model.
  write_file_atomic(path("ckpt/config.json"), R"({"format": "flexnas-checkpoint", "architecture": {"l": 1}, "model": {}})");
  msg = expect_config_error([&] { load_checkpoint(path("ckpt")); });
  EXPECT_NE(msg.find(path("ckpt/config.json") + ":1:"), std::string::npos) << msg;
  msg = expect_config_error([&] { load_checkpoint(path("nowhere")); });
  EXPECT_EQ(msg, path("nowhere/config.json") + ": error: not a flexnas checkpoint: config.json is missing");
}

}  // namespace
}  // namespace flexnas::models
