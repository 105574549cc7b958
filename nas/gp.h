#pragma once
// A Gaussian process on the surrogate's inputs: BOSHNAS's mean and epistemic uncertainty when
// SurrogateOptions::model is "gp" (nas/surrogate.h).
//
// Why: on NAS-Bench-BERT the spec's networks ranked unseen architectures worse than a ridge
// regression on the same inputs (bench/surrogate_quality_bench.cpp). A ridge is a GP with a linear
// kernel; this GP adds a squared-exponential part for what is not linear, and chooses the mix, the
// length scale and the noise by marginal likelihood, so it falls back to ridge-like fits when that
// is what the data support. Its predictive std is an exact epistemic uncertainty (zero at no point:
// it shrinks near results), and its mean and std have closed-form gradients and Hessian-vector
// products, which GOBI needs.
//
// Kernel on standardised inputs x, x' [d]:
//   k(x, x') = s² (f · xᵀx'/d + (1 − f) · exp(−|x − x'|² / (2 ℓ² d)))
// plus noise s²·g on the diagonal of the training kernel. f (linear share), ℓ (length scale, in
// units of √d, the typical distance between standardised points) and g (noise share) are chosen
// from small grids by the log marginal likelihood with s² profiled out (closed form); the mean is
// the targets' mean. Deterministic: no random draw.
#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace flexnas::nas {

struct GpOptions {
  std::vector<double> linear_shares{0.0, 0.25, 0.5, 0.75, 0.9, 1.0};  // f
  std::vector<double> length_scales{0.5, 1.0, 2.0};                   // ℓ
  std::vector<double> noises{0.01, 0.03, 0.1, 0.3, 1.0};              // g = noise / s²
  double min_signal_var = 1e-4;  // s² floor (one result, or all equal): the std never collapses to 0
};

/// The hyperparameters the last fit chose, and their log marginal likelihood.
struct GpHyper {
  double linear_share = 0, length_scale = 0, noise = 0, signal_var = 0, log_likelihood = 0;
};

class GaussianProcess {
 public:
  explicit GaussianProcess(GpOptions options = {});

  /// Fits on x [n, d] and y [n] (any float type); n ≥ 1.
  void fit(const at::Tensor& x, const at::Tensor& y);
  bool fitted() const { return n_ > 0; }
  const GpHyper& hyper() const { return hyper_; }
  int64_t input_dim() const { return d_; }

  /// Predictive mean [N] and latent std [N] (no noise) for x [N, d], kDouble, differentiable with
  /// respect to x through autograd (the reference for row_derivatives()).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x) const;

  /// One row x [d] and a direction w [d]: value, gradient [d] and Hessian-vector product H·w [d]
  /// of the mean and of the std, written out by hand (kernel derivatives below). `scratch` is
  /// reused between calls.
  struct RowDerivatives {
    double mean = 0, std = 0;
    std::vector<double> mean_grad, mean_hv, std_grad, std_hv;
    std::vector<double> scratch;
  };
  void row_derivatives(const double* x, const double* w, RowDerivatives& out) const;

 private:
  GpOptions options_;
  GpHyper hyper_;
  int64_t n_ = 0, d_ = 0;
  double y_mean_ = 0;
  at::Tensor x_train_;              // [n, d] kDouble
  at::Tensor alpha_;                // [n] = (K₀ + gI)⁻¹ (y − ȳ)
  at::Tensor inverse_;              // [n, n] = (K₀ + gI)⁻¹
  std::vector<double> xs_, alphas_, inv_;  // the same, flat, for row_derivatives()
};

}  // namespace flexnas::nas
