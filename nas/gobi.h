#pragma once
// GOBI (spec §3.4): gradient-based optimisation of the surrogate's input with AdaHessian, K
// restarts optimised together in one batch, then snapped to the nearest open library architecture.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

#include "nas/surrogate.h"

namespace flexnas::nas {

struct GobiOptions {
  int64_t restarts = 10;          // K
  int64_t max_iterations = 200;
  double lr = 0.5;                // AdaHessian (second order, used by the campaign)
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-4;
  double hessian_power = 1.0;     // k
  int64_t cosine_t_max = 2;       // CosineAnnealingLR(T_max = 2) stepped every iteration
  double tolerance = 1e-5;        // |a − a_prev| below this ...
  int64_t patience = 5;           // ... for more than this many consecutive iterations: that restart stops
  int64_t hutchinson_probes = 1;  // Rademacher probes per iteration
};

struct GobiResult {
  at::Tensor x;              // [K, d] optimised inputs (clamped to the bounds), kFloat
  at::Tensor start_value;    // [K] acquisition at the start points, kDouble
  at::Tensor final_value;    // [K] acquisition at the results, kDouble
  int64_t iterations = 0;    // iterations until every restart stopped
};

/// Learning rate of CosineAnnealingLR(T_max) with η_min = 0 at step t (closed form, period 2·T_max):
/// lr₀, lr₀/2, 0, lr₀/2, lr₀, ... for T_max = 2.
double cosine_lr(double lr0, int64_t t, int64_t t_max);

/// What AdaHessian needs at x [K, d] for probes [P, K, d]: values [K], gradients [K, d] and the
/// Hutchinson term mean_p v_p ∘ (H v_p) [K, d] (kDouble). Rows are independent.
struct GobiDerivatives {
  at::Tensor value, grad, diag;
};
using DerivativeOracle = std::function<GobiDerivatives(const at::Tensor& x, const at::Tensor& probes)>;

/// P Rademacher (±1) probe tensors [P, rows, dim], kDouble, drawn from `gen`.
at::Tensor rademacher_probes(int64_t probes, int64_t rows, int64_t dim, at::Generator& gen);

/// The oracle for any differentiable per-row function f (x [K, d] -> [K]) through autograd: the
/// gradient with create_graph, then one more backward per probe (Pearlmutter's double backward).
GobiDerivatives autograd_derivatives(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x,
                                     const at::Tensor& probes);

/// Hutchinson estimate of diag(∇²f) at x ([K, d], rows independent): mean over `probes` Rademacher
/// vectors v of v ∘ (H v). `f` maps x to per-row values [K]. Signed (AdaHessian uses its magnitude).
at::Tensor hutchinson_diagonal(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x,
                               int64_t probes, at::Generator& gen);

/// Minimises from `start` [K, d] with batched AdaHessian, clamped to [lower, upper] ([d] each).
/// Each row stops on its own convergence rule. The probes of iteration t are drawn from `gen`.
GobiResult adahessian_minimise(const DerivativeOracle& oracle, const at::Tensor& start, const at::Tensor& lower,
                               const at::Tensor& upper, const GobiOptions& options, at::Generator& gen);
/// Same for a per-row function f (values [K]) differentiated by autograd.
GobiResult adahessian_minimise(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& start,
                               const at::Tensor& lower, const at::Tensor& upper, const GobiOptions& options,
                               at::Generator& gen);

/// GOBI on the surrogate's acquisition, with its hand-written exact derivatives
/// (Surrogate::acquisition_derivatives; autograd_derivatives on Surrogate::forward gives the same).
GobiResult gobi(const Surrogate& surrogate, const at::Tensor& start, const at::Tensor& lower, const at::Tensor& upper,
                const AcquisitionSettings& acquisition_settings, const GobiOptions& options, at::Generator& gen);

}  // namespace flexnas::nas
