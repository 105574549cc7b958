#include "nas/gp.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "design_space/error.h"

namespace flexnas::nas {
namespace {

constexpr double kVarFloor = 1e-12;  // latent variance floor: keeps √v and 1/√v finite

/// Squared distances [N, n] between the rows of a [N, d] and b [n, d] (clamped at 0: rounding).
at::Tensor squared_distances(const at::Tensor& a, const at::Tensor& b) {
  return (a.pow(2).sum(1, true) + b.pow(2).sum(1).unsqueeze(0) - 2 * a.mm(b.t())).clamp_min(0);
}

}  // namespace

GaussianProcess::GaussianProcess(GpOptions options) : options_(std::move(options)) {
  FLEXNAS_CHECK(!options_.linear_shares.empty() && !options_.length_scales.empty() && !options_.noises.empty(),
                "GP: every hyperparameter grid needs a value");
}

void GaussianProcess::fit(const at::Tensor& x_in, const at::Tensor& y_in) {
  torch::NoGradGuard guard;
  const at::Tensor x = x_in.detach().to(at::kDouble).contiguous();
  const at::Tensor y = y_in.detach().to(at::kDouble).contiguous();
  FLEXNAS_CHECK(x.dim() == 2 && x.size(0) >= 1 && y.dim() == 1 && y.size(0) == x.size(0), "GP fit: x ", x.sizes(),
                " y ", y.sizes());
  const int64_t n = x.size(0), d = x.size(1);
  const double mean = y.mean().item<double>();
  const at::Tensor r = (y - mean).unsqueeze(1);                // [n, 1]
  const at::Tensor lin = x.mm(x.t()) / double(d);              // [n, n]
  const at::Tensor sq = squared_distances(x, x) / double(d);   // [n, n], ~2 between typical points
  const at::Tensor eye = at::eye(n, at::kDouble);
  double best = -std::numeric_limits<double>::infinity();
  at::Tensor best_chol;
  GpHyper chosen;
  for (double f : options_.linear_shares) {
    for (size_t li = 0; li < options_.length_scales.size(); ++li) {
      const double ell = options_.length_scales[li];
      if (f >= 1.0 && li > 0) break;  // a purely linear kernel has no length scale
      const at::Tensor k0 = f * lin + (1 - f) * at::exp(sq * (-0.5 / (ell * ell)));
      for (double g : options_.noises) {
        auto [chol, info] = at::linalg_cholesky_ex(k0 + g * eye);
        if (info.item<int64_t>() != 0) continue;
        const at::Tensor a = at::cholesky_solve(r, chol);
        const double quad = (r * a).sum().item<double>();
        const double s2 = std::max(quad / double(n), options_.min_signal_var);
        const double logdet = 2 * chol.diagonal().log().sum().item<double>();
        // log N(r | 0, s²(K₀ + gI)) with s² at its maximiser.
        const double lml = -0.5 * quad / s2 - 0.5 * logdet - 0.5 * double(n) * std::log(2 * M_PI * s2);
        if (lml > best) {
          best = lml;
          best_chol = chol;
          chosen = {f, ell, g, s2, lml};
        }
      }
    }
  }
  FLEXNAS_CHECK(best_chol.defined(), "GP fit: no hyperparameters gave a positive definite kernel");
  hyper_ = chosen;
  n_ = n, d_ = d;
  y_mean_ = mean;
  x_train_ = x.clone();
  inverse_ = at::cholesky_inverse(best_chol).contiguous();
  alpha_ = at::cholesky_solve(r, best_chol).squeeze(1).contiguous();
  xs_.assign(x_train_.data_ptr<double>(), x_train_.data_ptr<double>() + n * d);
  alphas_.assign(alpha_.data_ptr<double>(), alpha_.data_ptr<double>() + n);
  inv_.assign(inverse_.data_ptr<double>(), inverse_.data_ptr<double>() + n * n);
}

std::pair<at::Tensor, at::Tensor> GaussianProcess::forward(const at::Tensor& x_in) const {
  FLEXNAS_CHECK(fitted(), "GP forward before fit");
  const at::Tensor x = x_in.to(at::kDouble);
  FLEXNAS_CHECK(x.dim() == 2 && x.size(1) == d_, "GP forward: x ", x.sizes(), ", fitted on dim ", d_);
  const double f = hyper_.linear_share, ell = hyper_.length_scale, d = double(d_);
  // k [N, n]: the unscaled kernel between the queries and the training inputs.
  const at::Tensor k = f * x.mm(x_train_.t()) / d + (1 - f) * at::exp(squared_distances(x, x_train_) * (-0.5 / (ell * ell * d)));
  const at::Tensor mean = y_mean_ + k.mv(alpha_);
  const at::Tensor kxx = f * x.pow(2).sum(1) / d + (1 - f);
  const at::Tensor var = hyper_.signal_var * (kxx - (k.mm(inverse_) * k).sum(1));
  return {mean, var.clamp_min(kVarFloor).sqrt()};
}

void GaussianProcess::row_derivatives(const double* x, const double* w, RowDerivatives& out) const {
  FLEXNAS_CHECK(fitted(), "GP derivatives before fit");
  const int64_t n = n_, d = d_;
  const double f = hyper_.linear_share, invd = 1.0 / double(d);
  const double c = 1.0 / (hyper_.length_scale * hyper_.length_scale * double(d));  // exp(−c|δ|²/2)
  const double s2 = hyper_.signal_var;
  // Per training point i, with δ_i = x − x_i and e_i = exp(−c|δ_i|²/2):
  //   k_i = f x·x_i/d + (1−f) e_i,   ∇k_i = J_i = f x_i/d − (1−f) c e_i δ_i,
  //   H_i w = (1−f) e_i (c² (δ_i·w) δ_i − c w).
  out.scratch.assign(size_t(6 * n), 0.0);
  double* k = out.scratch.data();
  double* e = k + n;
  double* dw = e + n;   // δ_i·w
  double* jw = dw + n;  // J_i·w
  double* b = jw + n;   // A k
  double* ajw = b + n;  // A (J w)
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = &xs_[size_t(i * d)];
    double dot = 0, sq = 0, dwi = 0, xw = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double delta = x[j] - xi[j];
      dot += x[j] * xi[j], sq += delta * delta, dwi += delta * w[j], xw += xi[j] * w[j];
    }
    e[i] = std::exp(-0.5 * c * sq);
    k[i] = f * dot * invd + (1 - f) * e[i];
    dw[i] = dwi;
    jw[i] = f * xw * invd - (1 - f) * c * e[i] * dwi;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double* row = &inv_[size_t(i * n)];
    double bi = 0, ai = 0;
    for (int64_t j = 0; j < n; ++j) bi += row[j] * k[j], ai += row[j] * jw[j];
    b[i] = bi, ajw[i] = ai;
  }
  // Mean m = ȳ + Σ α_i k_i; variance v = s²(k(x,x) − kᵀ A k), k(x,x) = f|x|²/d + (1−f).
  //   ∇v = s²(2f x/d − 2 Σ b_i J_i),  H_v w = s²(2f w/d − 2 Σ b_i H_i w − 2 Σ (A J w)_i J_i).
  out.mean_grad.assign(size_t(d), 0.0), out.mean_hv.assign(size_t(d), 0.0);
  std::vector<double>& vg = out.std_grad;
  std::vector<double>& vh = out.std_hv;
  vg.assign(size_t(d), 0.0), vh.assign(size_t(d), 0.0);
  double mean = y_mean_, kAk = 0, xx = 0, sum_ae = 0, sum_be = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = &xs_[size_t(i * d)];
    const double a = alphas_[size_t(i)];
    mean += a * k[i];
    kAk += k[i] * b[i];
    sum_ae += a * e[i], sum_be += b[i] * e[i];
    // Coefficients of x_i and of δ_i in Σ α_i J_i, Σ α_i H_i w, Σ b_i H_i w and Σ (Ajw)_i J_i.
    const double lin_m = a * f * invd, rbf_m = -a * (1 - f) * c * e[i];
    const double h_m = a * (1 - f) * e[i] * c * c * dw[i];
    const double h_v = b[i] * (1 - f) * e[i] * c * c * dw[i];
    const double lin_g = b[i] * f * invd, rbf_g = -b[i] * (1 - f) * c * e[i];
    const double lin_j = ajw[i] * f * invd, rbf_j = -ajw[i] * (1 - f) * c * e[i];
    for (int64_t j = 0; j < d; ++j) {
      const double delta = x[j] - xi[j];
      out.mean_grad[size_t(j)] += lin_m * xi[j] + rbf_m * delta;
      out.mean_hv[size_t(j)] += h_m * delta;
      vg[size_t(j)] += lin_g * xi[j] + rbf_g * delta;
      vh[size_t(j)] += h_v * delta + lin_j * xi[j] + rbf_j * delta;
    }
  }
  for (int64_t j = 0; j < d; ++j) xx += x[j] * x[j];
  const double var = s2 * (f * xx * invd + (1 - f) - kAk);
  for (int64_t j = 0; j < d; ++j) {
    out.mean_hv[size_t(j)] -= (1 - f) * c * sum_ae * w[j];
    // vg/vh held Σ b_i J_i and Σ b_i H_i w + Σ (Ajw)_i J_i without the −c w part of H_i w.
    vg[size_t(j)] = s2 * (2 * f * x[j] * invd - 2 * vg[size_t(j)]);
    vh[size_t(j)] = s2 * (2 * f * w[j] * invd - 2 * (vh[size_t(j)] - (1 - f) * c * sum_be * w[j]));
  }
  out.mean = mean;
  if (var <= kVarFloor) {  // the clamp: constant there
    out.std = std::sqrt(kVarFloor);
    std::fill(vg.begin(), vg.end(), 0.0);
    std::fill(vh.begin(), vh.end(), 0.0);
    return;
  }
  // std u = √v: ∇u = ∇v/(2u), H_u w = H_v w/(2u) − (∇v·w) ∇v/(4u³).
  const double u = std::sqrt(var);
  double gw = 0;
  for (int64_t j = 0; j < d; ++j) gw += vg[size_t(j)] * w[j];
  for (int64_t j = 0; j < d; ++j) {
    vh[size_t(j)] = vh[size_t(j)] / (2 * u) - gw * vg[size_t(j)] / (4 * u * u * u);
    vg[size_t(j)] /= 2 * u;
  }
  out.std = u;
}

}  // namespace flexnas::nas
