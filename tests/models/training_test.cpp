// Training building blocks: AdamW against LibTorch's own AdamW, the decay exclusions, the schedule,
// clipping, and bit-exact resume from a saved train state.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "design_space/error.h"
#include "models/checkpoint.h"
#include "models/training.h"
#include "tests/models/test_util.h"

namespace flexnas::models {
namespace {
namespace fs = std::filesystem;

TEST(Training, DecayExcludesBiasesAndLayerNorm) {
  EXPECT_TRUE(decays("bert.encoder.layer.0.attention.self.query.weight"));
  EXPECT_TRUE(decays("bert.encoder.layer.0.attention.self.wma"));
  EXPECT_FALSE(decays("bert.encoder.layer.0.attention.self.query.bias"));
  EXPECT_FALSE(decays("bert.embeddings.LayerNorm.weight"));
  EXPECT_FALSE(decays("cls.predictions.bias"));
  EXPECT_FALSE(decays("bert.encoder.layer.0.attention.self.key_conv_attn_layer.bias"));
}

/// Five updates of a Linear(4, 3) by our AdamW, its weight at `weight_lr_scale` x the rate through
/// lr_scale, against LibTorch's AdamW with the same two groups (the weight decayed at that rate, the
/// bias undecayed at the rate). Returns how far the weight moved.
double expect_adamw_matches_libtorch(uint64_t seed, double weight_lr_scale) {
  torch::manual_seed(seed);
  torch::nn::Linear a(4, 3), b(4, 3);
  {
    torch::NoGradGuard no_grad;
    b->weight.copy_(a->weight);
    b->bias.copy_(a->bias);
  }
  AdamWOptions o;
  o.lr = 0.01;
  AdamW mine(*a, o, [&](const std::string& name) { return name == "weight" ? weight_lr_scale : 1.0; });
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{b->weight},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(weight_lr_scale * o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay)));
  groups.emplace_back(std::vector<torch::Tensor>{b->bias},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(0.0)));
  torch::optim::AdamW theirs(std::move(groups));
  const torch::Tensor start = a->weight.detach().clone();
  for (int step = 0; step < 5; ++step) {
    auto x = torch::randn({6, 4});
    mine.zero_grad();
    a(x).pow(2).sum().backward();
    mine.step(o.lr);
    theirs.zero_grad();
    b(x).pow(2).sum().backward();
    theirs.step();
  }
  EXPECT_TRUE(torch::allclose(a->weight, b->weight, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(a->bias, b->bias, 1e-6, 1e-7));
  EXPECT_EQ(mine.steps(), 5);
  return (a->weight - start).abs().max().item<double>();
}

TEST(Training, AdamWMatchesLibTorchAdamW) {
  // A module with one decayed weight and one bias; LibTorch's AdamW gets the same two groups.
  expect_adamw_matches_libtorch(0, 1.0);
}

TEST(Training, AdamWLearningRateScaleMatchesLibTorchParameterGroups) {
  // lr_scale gives the weight 3x the rate (its own group in LibTorch, decay scaled with it) and
  // leaves the bias at 1x: the same updates as LibTorch's AdamW with two learning rates.
  const double moved = expect_adamw_matches_libtorch(1, 3.0);
  // Adam's first steps move each weight by about the rate: 5 steps at 3 x 0.01 go well past 5 x 0.01.
  EXPECT_GT(moved, 0.06);
}

TEST(Training, LinearWarmupThenDecay) {
  LinearSchedule s{1e-3, 10, 110};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(60), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(110), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(200), 0.0);
}

TEST(Training, ClipGradNorm) {
  torch::nn::Linear m(2, 1);
  m->weight.mutable_grad() = torch::tensor({{3.0f, 0.0f}});
  m->bias.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(clip_grad_norm(*m, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(m->weight.grad()[0][0].item<float>(), 0.6f, 1e-5);
  EXPECT_NEAR(m->bias.grad()[0].item<float>(), 0.8f, 1e-5);
}

/// Trains `steps` MLM steps (dropout on, so the RNG matters) and returns the losses.
std::vector<float> train(FlexModel& model, AdamW& opt, int64_t first, int64_t last) {
  LinearSchedule schedule{1e-3, 2, 8};
  std::vector<float> losses;
  auto [ids, mask] = testing::tiny_batch();
  for (int64_t step = first; step < last; ++step) {
    auto labels = torch::where(torch::rand(ids.sizes()) < 0.3, ids, torch::full_like(ids, -100));
    labels.index_put_({0, 0}, ids[0][0]);  // at least one labelled position
    opt.zero_grad();
    auto loss = model->loss(ids, mask, labels);
    loss.backward();
    clip_grad_norm(*model, 1.0);
    opt.step(schedule.lr_at(step));
    losses.push_back(loss.item<float>());
  }
  return losses;
}

TEST(Training, ResumeIsBitExact) {
  const fs::path dir = fs::temp_directory_path() / ("flexnas_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const auto arch = testing::hetero_arch("c", "3");
  // Uninterrupted run of 6 steps.
  torch::manual_seed(5);
  FlexModel a(arch, testing::tiny_options());
  AdamW opt_a(*a);
  auto full = train(a, opt_a, 0, 6);
  // Interrupted after 3 steps: save, then continue in a fresh model and optimiser.
  torch::manual_seed(5);
  FlexModel b(arch, testing::tiny_options());
  AdamW opt_b(*b);
  auto first = train(b, opt_b, 0, 3);
  save_checkpoint(dir.string(), *b);
  save_train_state(dir.string(), opt_b, 3);
  torch::manual_seed(999);  // whatever happens in between
  torch::rand({10});
  FlexModel c = load_checkpoint(dir.string());
  c->train();
  AdamW opt_c(*c);
  const int64_t step = load_train_state(dir.string(), opt_c);
  EXPECT_EQ(step, 3);
  EXPECT_EQ(opt_c.steps(), 3);
  auto rest = train(c, opt_c, step, 6);
  first.insert(first.end(), rest.begin(), rest.end());
  ASSERT_EQ(first.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(first[i], full[i]) << "step " << i;
  auto pa = a->named_parameters();
  for (const auto& item : c->named_parameters()) EXPECT_TRUE(torch::equal(item.value(), pa[item.key()])) << item.key();
  // A state that does not fit the optimiser is refused, naming the file.
  FlexModel other(testing::standard_arch("sa", "sdp"), testing::tiny_options());
  AdamW opt_other(*other);
  try {
    load_train_state(dir.string(), opt_other);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / kTrainStateFile).string() + ": error: tensor '"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flexnas::models
