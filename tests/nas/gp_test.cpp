// Tests of the Gaussian-process surrogate (nas/gp.h) and of the Surrogate's "gp" model: the
// hyperparameter choice follows the data, predictions interpolate, the std shrinks near results,
// and the hand-written gradients and Hessian-vector products GOBI uses equal autograd's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "design_space/embedding.h"
#include "nas/gobi.h"
#include "nas/gp.h"
#include "nas/surrogate.h"

using namespace flexnas;
using namespace flexnas::nas;

namespace {

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

}  // namespace

TEST(Gp, ChoosesALinearKernelForLinearDataAndRanksHeldOutPoints) {
  torch::manual_seed(1);
  const at::Tensor w = at::randn({12}, at::kDouble);
  const at::Tensor x = at::randn({60, 12}, at::kDouble), held = at::randn({200, 12}, at::kDouble);
  GaussianProcess gp;
  gp.fit(x, x.mv(w) + 0.05 * at::randn({60}, at::kDouble));
  EXPECT_GE(gp.hyper().linear_share, 0.9);  // the data are linear: the likelihood says so
  const auto [mean, std] = gp.forward(held);
  EXPECT_GT(spearman_correlation(to_vector(mean), to_vector(held.mv(w))), 0.97);
  // A smooth non-linear function: the squared-exponential part takes over.
  const at::Tensor x2 = at::rand({80, 2}, at::kDouble) * 4 - 2;
  auto bump = [](const at::Tensor& z) { return at::exp(-(z * z).sum(1)); };
  gp.fit(x2, bump(x2));
  EXPECT_LE(gp.hyper().linear_share, 0.5);
  const at::Tensor q = at::rand({100, 2}, at::kDouble) * 4 - 2;
  EXPECT_LT((gp.forward(q).first - bump(q)).abs().max().item<double>(), 0.1);
}

TEST(Gp, InterpolatesWithLowNoiseAndIsSureOnlyNearResults) {
  torch::manual_seed(2);
  GpOptions o;
  o.noises = {1e-4};
  GaussianProcess gp(o);
  const at::Tensor x = at::randn({15, 4}, at::kDouble), y = at::rand({15}, at::kDouble);
  gp.fit(x, y);
  const auto [mean, std] = gp.forward(x);
  EXPECT_TRUE(at::allclose(mean, y, 1e-2, 1e-2)) << mean - y;
  const at::Tensor far = x + 3.0;
  EXPECT_GT(gp.forward(far).second.min().item<double>(), 3 * std.max().item<double>());
  // One result, or equal results: the std stays positive and the mean is the value.
  gp.fit(x.slice(0, 0, 1), at::tensor({0.5}, at::kDouble));
  const auto one = gp.forward(far);
  EXPECT_TRUE(at::allclose(one.first, at::full({15}, 0.5, at::kDouble)));
  EXPECT_TRUE((one.second > 0).all().item<bool>());
}

TEST(Gp, RowDerivativesMatchAutograd) {
  // Mixed kernel (both parts non-zero), away from and at a training point.
  torch::manual_seed(3);
  GpOptions o;
  o.linear_shares = {0.4};
  o.length_scales = {0.7};
  o.noises = {0.05};
  GaussianProcess gp(o);
  const int64_t d = 6;
  const at::Tensor x = at::randn({20, d}, at::kDouble);
  gp.fit(x, at::sigmoid(x.select(1, 0) - x.select(1, 1) * x.select(1, 2)));
  const at::Tensor queries = at::cat({at::randn({4, d}, at::kDouble), x.slice(0, 0, 1) + 0.01});
  for (int64_t r = 0; r < queries.size(0); ++r) {
    const at::Tensor q = queries[r].clone().requires_grad_(true), w = at::randn({d}, at::kDouble);
    GaussianProcess::RowDerivatives hand;
    gp.row_derivatives(q.data_ptr<double>(), w.data_ptr<double>(), hand);
    for (int which = 0; which < 2; ++which) {
      const at::Tensor q2 = queries[r].clone().unsqueeze(0).requires_grad_(true);
      const auto [mean, std] = gp.forward(q2);
      const at::Tensor f = (which == 0 ? mean : std).sum();
      const at::Tensor g = torch::autograd::grad({f}, {q2}, {}, true, true)[0].squeeze(0);
      const at::Tensor hv = torch::autograd::grad({(g * w).sum()}, {q2})[0].squeeze(0);
      const double value = which == 0 ? hand.mean : hand.std;
      const std::vector<double>& hg = which == 0 ? hand.mean_grad : hand.std_grad;
      const std::vector<double>& hh = which == 0 ? hand.mean_hv : hand.std_hv;
      EXPECT_NEAR(value, f.item<double>(), 1e-9) << "row " << r << " output " << which;
      EXPECT_TRUE(at::allclose(at::tensor(hg, at::kDouble), g, 1e-6, 1e-9)) << "row " << r << " output " << which;
      EXPECT_TRUE(at::allclose(at::tensor(hh, at::kDouble), hv, 1e-6, 1e-9))
          << "row " << r << " output " << which << "\n" << at::tensor(hh, at::kDouble) - hv;
      EXPECT_GT(at::tensor(hh, at::kDouble).abs().max().item<double>(), 1e-6);  // not trivially zero
    }
  }
}

TEST(GpSurrogate, AcquisitionDerivativesMatchAutogradInEveryMode) {
  // GOBI's value, gradient and v ∘ Hv from the GP mean and std (and, in the aleatoric phase, the
  // GP's noise or the NPN's variance) against autograd's double backward through Surrogate::forward.
  torch::manual_seed(4);
  const at::Tensor x = at::randn({40, 16});
  const at::Tensor y = at::sigmoid(x.slice(1, 0, 1).squeeze(1) - 0.5 * x.slice(1, 1, 2).squeeze(1));
  for (bool npn : {false, true}) {
    SurrogateOptions o;
    o.model = SurrogateModel::kGp;
    o.gp_npn = npn;
    o.max_epochs = 30;
    Surrogate s(o);
    const FitReport report = s.fit(x, y, 9);
    EXPECT_EQ(report.epochs[0], 0);  // teacher and student are not trained for the GP
    EXPECT_EQ(report.epochs[1], 0);
    EXPECT_EQ(report.epochs[2] > 0, npn);  // the NPN only when it gives the aleatoric variance
    ASSERT_TRUE(s.gp().fitted());
    const at::Tensor at_x = at::randn({6, 16}) * 1.5;
    const SurrogatePrediction p = s.predict(at_x);
    if (!npn)
      EXPECT_TRUE(at::allclose(p.aleatoric_var, at::full({6}, s.gp().hyper().signal_var * s.gp().hyper().noise)));
    EXPECT_TRUE(at::allclose(p.mean.to(at::kDouble), s.gp().forward(at_x).first, 1e-5, 1e-6));
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(10);
    const at::Tensor probes = rademacher_probes(3, 6, 16, gen);
    for (int mode = 0; mode < 3; ++mode) {
      AcquisitionSettings acq;
      acq.aleatoric = mode >= 1;
      acq.uncertainty_only = mode == 2;
      const auto hand = s.acquisition_derivatives(at_x, probes, acq);
      const auto ref = autograd_derivatives([&](const at::Tensor& z) { return acquisition(s.forward(z), acq); }, at_x, probes);
      const std::string what = std::string(npn ? "npn" : "gp noise") + " mode " + std::to_string(mode);
      EXPECT_TRUE(at::allclose(hand.value, ref.value, 1e-4, 1e-6)) << what;
      EXPECT_TRUE(at::allclose(hand.grad, ref.grad, 1e-3, 1e-5)) << what << "\n" << hand.grad - ref.grad;
      EXPECT_TRUE(at::allclose(hand.diag, ref.diag, 1e-2, 1e-4)) << what << "\n" << hand.diag << ref.diag;
      EXPECT_GT(hand.diag.abs().max().item<double>(), 1e-5) << what;
    }
    // GOBI lowers the acquisition with these derivatives.
    const GobiResult r = gobi(s, x.slice(0, 0, 10), std::get<0>(x.min(0)), std::get<0>(x.max(0)), AcquisitionSettings{},
                              GobiOptions{}, gen);
    EXPECT_LT(r.final_value.mean().item<double>(), r.start_value.mean().item<double>());
  }
}
