#include "nas/gobi.h"

#include <torch/torch.h>

#include <cmath>

#include "design_space/error.h"

namespace flexnas::nas {

double cosine_lr(double lr0, int64_t t, int64_t t_max) {
  return lr0 * (1.0 + std::cos(M_PI * double(t) / double(t_max))) / 2.0;
}

namespace {

/// Rademacher ±1 of x's shape.
at::Tensor rademacher(const at::Tensor& x, at::Generator& gen) {
  return at::empty_like(x).bernoulli_(0.5, gen).mul_(2).sub_(1);
}

/// Per-row values, gradient g = ∇f and Hutchinson's v ∘ Hv averaged over probes.
struct Derivatives {
  at::Tensor value, grad, diag;
};

Derivatives derivatives(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x_value, int64_t probes,
                        at::Generator& gen) {
  const at::Tensor x = x_value.detach().requires_grad_(true);
  const at::Tensor value = f(x);  // [K]
  // Rows are independent, so the gradient of the sum is each row's own gradient.
  const at::Tensor g = torch::autograd::grad({value.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  at::Tensor diag = at::zeros_like(x);
  for (int64_t p = 0; p < probes; ++p) {
    const at::Tensor v = rademacher(x, gen);
    const at::Tensor hv = torch::autograd::grad({(g * v).sum()}, {x}, {}, /*retain_graph=*/p + 1 < probes, false)[0];
    diag = diag + v * hv;
  }
  return {value.detach(), g.detach(), (diag / double(probes)).detach()};
}

}  // namespace

at::Tensor hutchinson_diagonal(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x, int64_t probes,
                               at::Generator& gen) {
  return derivatives(f, x, probes, gen).diag;
}

GobiResult adahessian_minimise(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& start,
                               const at::Tensor& lower, const at::Tensor& upper, const GobiOptions& o,
                               at::Generator& gen) {
  FLEXNAS_CHECK(start.dim() == 2, "GOBI start must be [K, d], got ", start.sizes());
  const int64_t K = start.size(0);
  at::Tensor x = at::max(at::min(start.to(at::kFloat), upper), lower).contiguous();
  at::Tensor m = at::zeros_like(x), v2 = at::zeros_like(x);
  at::Tensor active = at::ones({K, 1}, x.options());  // 1 while a restart still moves
  std::vector<int64_t> calm(size_t(K), 0);
  at::Tensor previous;
  GobiResult result;
  int64_t t = 0;
  for (; t < o.max_iterations; ++t) {
    Derivatives d = derivatives(f, x, o.hutchinson_probes, gen);
    if (t == 0) result.start_value = d.value.clone();
    // Convergence per restart: |a − a_prev| < tol for more than `patience` consecutive iterations.
    if (previous.defined()) {
      auto delta = (d.value - previous).abs();
      auto acc = delta.accessor<float, 1>();
      auto act = active.accessor<float, 2>();
      for (int64_t k = 0; k < K; ++k) {
        calm[size_t(k)] = acc[k] < o.tolerance ? calm[size_t(k)] + 1 : 0;
        if (calm[size_t(k)] > o.patience) act[k][0] = 0;
      }
      if (active.sum().item<float>() == 0) break;
    }
    previous = d.value;
    // AdaHessian step (k = hessian_power): D = |v ∘ Hv| (= |Hv| for Rademacher v).
    const at::Tensor D = d.diag.abs();
    const int64_t step = t + 1;
    m = o.beta1 * m + (1 - o.beta1) * d.grad;
    v2 = o.beta2 * v2 + (1 - o.beta2) * D * D;
    const double bc1 = 1 - std::pow(o.beta1, double(step));
    const double bc2 = 1 - std::pow(o.beta2, double(step));
    const at::Tensor denom = at::pow(at::sqrt(v2), o.hessian_power) / std::pow(std::sqrt(bc2), o.hessian_power) + o.eps;
    const double lr = cosine_lr(o.lr, t, o.cosine_t_max);
    x = x - active * (lr * (m / bc1) / denom);
    x = at::max(at::min(x, upper), lower);
  }
  result.iterations = t;
  result.x = x.detach();
  {
    torch::NoGradGuard guard;
    result.final_value = f(result.x).detach();
  }
  return result;
}

GobiResult gobi(const Surrogate& surrogate, const at::Tensor& start, const at::Tensor& lower, const at::Tensor& upper,
                const AcquisitionSettings& acquisition_settings, const GobiOptions& options, at::Generator& gen) {
  auto f = [&](const at::Tensor& x) { return acquisition(surrogate.forward(x), acquisition_settings); };
  return adahessian_minimise(f, start, lower, upper, options, gen);
}

}  // namespace flexnas::nas
