#include "nas/gobi.h"

#include <torch/torch.h>

#include <cmath>

#include "design_space/error.h"

namespace flexnas::nas {

double cosine_lr(double lr0, int64_t t, int64_t t_max) {
  return lr0 * (1.0 + std::cos(M_PI * double(t) / double(t_max))) / 2.0;
}

at::Tensor rademacher_probes(int64_t probes, int64_t rows, int64_t dim, at::Generator& gen) {
  return at::empty({probes, rows, dim}, at::kDouble).bernoulli_(0.5, gen).mul_(2).sub_(1);
}

GobiDerivatives autograd_derivatives(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x_value,
                                     const at::Tensor& probes) {
  const at::Tensor x = x_value.detach().to(at::kFloat).requires_grad_(true);
  const at::Tensor value = f(x);  // [K]
  // Rows are independent, so the gradient of the sum is each row's own gradient.
  const at::Tensor g = torch::autograd::grad({value.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  const int64_t P = probes.size(0);
  at::Tensor diag = at::zeros_like(x);
  for (int64_t p = 0; p < P; ++p) {
    const at::Tensor v = probes[p].to(at::kFloat);
    const at::Tensor hv = torch::autograd::grad({(g * v).sum()}, {x}, {}, /*retain_graph=*/p + 1 < P, false)[0];
    diag = diag + v * hv;
  }
  return {value.detach().to(at::kDouble), g.detach().to(at::kDouble), (diag / double(std::max<int64_t>(P, 1))).detach().to(at::kDouble)};
}

at::Tensor hutchinson_diagonal(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x, int64_t probes,
                               at::Generator& gen) {
  return autograd_derivatives(f, x, rademacher_probes(probes, x.size(0), x.size(1), gen)).diag.to(at::kFloat);
}

GobiResult adahessian_minimise(const DerivativeOracle& oracle, const at::Tensor& start, const at::Tensor& lower_t,
                               const at::Tensor& upper_t, const GobiOptions& o, at::Generator& gen) {
  FLEXNAS_CHECK(start.dim() == 2, "GOBI start must be [K, d], got ", start.sizes());
  const int64_t K = start.size(0), d = start.size(1);
  const at::Tensor lower = lower_t.to(at::kDouble).contiguous(), upper = upper_t.to(at::kDouble).contiguous();
  FLEXNAS_CHECK(lower.numel() == d && upper.numel() == d, "GOBI bounds must be [", d, "]");
  const double* lo = lower.data_ptr<double>();
  const double* hi = upper.data_ptr<double>();
  // x, m, v2 [K, d] in double; the update is a handful of flops per entry, done in place.
  at::Tensor x_t = start.to(at::kDouble).clone().contiguous();
  double* x = x_t.data_ptr<double>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < d; ++i) x[k * d + i] = std::max(lo[i], std::min(hi[i], x[k * d + i]));
  std::vector<double> m(size_t(K * d), 0.0), v2(size_t(K * d), 0.0), previous(size_t(K), 0.0);
  std::vector<char> active(size_t(K), 1);
  std::vector<int64_t> calm(size_t(K), 0);
  GobiResult result;
  int64_t t = 0;
  for (; t < o.max_iterations; ++t) {
    const GobiDerivatives dv = oracle(x_t, rademacher_probes(o.hutchinson_probes, K, d, gen));
    const at::Tensor value_t = dv.value.to(at::kDouble).contiguous(), grad_t = dv.grad.to(at::kDouble).contiguous(),
                     diag_t = dv.diag.to(at::kDouble).contiguous();
    const double* value = value_t.data_ptr<double>();
    const double* g = grad_t.data_ptr<double>();
    const double* diag = diag_t.data_ptr<double>();
    if (t == 0) result.start_value = value_t.clone();
    // Convergence per restart: |a − a_prev| < tol for more than `patience` consecutive iterations.
    if (t > 0) {
      int64_t still = 0;
      for (int64_t k = 0; k < K; ++k) {
        calm[size_t(k)] = std::abs(value[k] - previous[size_t(k)]) < o.tolerance ? calm[size_t(k)] + 1 : 0;
        if (calm[size_t(k)] > o.patience) active[size_t(k)] = 0;
        still += active[size_t(k)];
      }
      if (still == 0) break;
    }
    for (int64_t k = 0; k < K; ++k) previous[size_t(k)] = value[k];
    // AdaHessian step (k = hessian_power): D = |v ∘ Hv| (= |Hv| for Rademacher v).
    const int64_t step = t + 1;
    const double bc1 = 1 - std::pow(o.beta1, double(step));
    const double bc2 = 1 - std::pow(o.beta2, double(step));
    const double lr = cosine_lr(o.lr, t, o.cosine_t_max);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t i = 0; i < d; ++i) {
        const size_t j = size_t(k * d + i);
        const double D = std::abs(diag[j]);
        m[j] = o.beta1 * m[j] + (1 - o.beta1) * g[j];
        v2[j] = o.beta2 * v2[j] + (1 - o.beta2) * D * D;
        if (!active[size_t(k)]) continue;  // a stopped restart keeps its x (its moments still follow, as before)
        const double denom = std::pow(std::sqrt(v2[j]), o.hessian_power) / std::pow(std::sqrt(bc2), o.hessian_power) + o.eps;
        x[j] = std::max(lo[i], std::min(hi[i], x[j] - lr * (m[j] / bc1) / denom));
      }
    }
  }
  result.iterations = t;
  result.x = x_t.to(at::kFloat);
  // Final values at the results: v = 0 probes make the Hessian term vanish.
  result.final_value = oracle(x_t, at::zeros({1, K, d}, at::kDouble)).value.to(at::kDouble);
  return result;
}

GobiResult adahessian_minimise(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& start,
                               const at::Tensor& lower, const at::Tensor& upper, const GobiOptions& options,
                               at::Generator& gen) {
  DerivativeOracle oracle = [&](const at::Tensor& x, const at::Tensor& probes) {
    return autograd_derivatives(f, x, probes);
  };
  return adahessian_minimise(oracle, start, lower, upper, options, gen);
}

GobiResult gobi(const Surrogate& surrogate, const at::Tensor& start, const at::Tensor& lower, const at::Tensor& upper,
                const AcquisitionSettings& acquisition_settings, const GobiOptions& options, at::Generator& gen) {
  DerivativeOracle oracle = [&](const at::Tensor& x, const at::Tensor& probes) {
    const Surrogate::Derivatives d = surrogate.acquisition_derivatives(x, probes, acquisition_settings);
    return GobiDerivatives{d.value, d.grad, d.diag};
  };
  return adahessian_minimise(oracle, start, lower, upper, options, gen);
}

}  // namespace flexnas::nas
