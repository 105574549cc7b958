#include "nas/surrogate.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "design_space/error.h"
#include "nas/policy.h"

namespace flexnas::nas {
namespace {

constexpr double kVarFloor = 1e-8;  // keeps √s and 1/s finite

/// softplus^-1(y) = log(e^y − 1), for the NPN's variance parameters.
at::Tensor inverse_softplus(const at::Tensor& y) { return at::log(at::expm1(y)); }

/// One dense layer: w [in, out], b [out], PyTorch's default Linear init U(±1/√in).
struct Dense {
  at::Tensor w, b;
  Dense() = default;
  Dense(int64_t in, int64_t out, at::Generator& gen) {
    const double bound = 1.0 / std::sqrt(double(in));
    w = (at::rand({in, out}, gen) * 2 - 1).mul_(bound).requires_grad_(true);
    b = (at::rand({out}, gen) * 2 - 1).mul_(bound).requires_grad_(true);
  }
  at::Tensor operator()(const at::Tensor& x) const { return at::addmm(b, x, w); }
};

/// Teacher (with dropout) and student share this shape: 16 -> 64 -> 32 -> 1, Softplus, Sigmoid.
struct Mlp {
  Dense l1, l2, l3;
  double dropout = 0;
  Mlp() = default;
  Mlp(int64_t in, double p, at::Generator& gen) : l1(in, 64, gen), l2(64, 32, gen), l3(32, 1, gen), dropout(p) {}
  std::vector<at::Tensor> parameters() const { return {l1.w, l1.b, l2.w, l2.b, l3.w, l3.b}; }
  /// x [n, in] -> [n]. `gen` non-null = training mode (dropout drawn from it).
  at::Tensor forward(const at::Tensor& x, at::Generator* gen) const {
    auto drop = [&](at::Tensor h) {
      if (!gen || dropout <= 0) return h;
      at::Tensor keep = at::empty_like(h).bernoulli_(1.0 - dropout, *gen);
      return h * keep / (1.0 - dropout);
    };
    at::Tensor h = drop(at::softplus(l1(x)));
    h = drop(at::softplus(l2(h)));
    return at::sigmoid(l3(h)).squeeze(1);
  }
};

/// NPN linear layer (spec §3.2): mean weights W_m, variance weights W_s = softplus(W̃_s).
struct NpnDense {
  at::Tensor wm, ws_raw, bm, bs_raw;
  NpnDense() = default;
  NpnDense(int64_t in, int64_t out, at::Generator& gen) {
    const double a = std::sqrt(6.0) / std::sqrt(double(in + out));
    wm = (at::rand({in, out}, gen) * 2 - 1).mul_(a).requires_grad_(true);
    ws_raw = inverse_softplus(at::rand({in, out}, gen).mul_(0.01 * a).clamp_min_(1e-12)).requires_grad_(true);
    bm = at::zeros({out}).requires_grad_(true);
    bs_raw = at::full({out}, -10.0).requires_grad_(true);
  }
  std::vector<at::Tensor> parameters() const { return {wm, ws_raw, bm, bs_raw}; }
  /// (m, s) [n, in] -> [n, out]; s undefined = zero input variance (first layer).
  std::pair<at::Tensor, at::Tensor> operator()(const at::Tensor& m, const at::Tensor& s) const {
    const at::Tensor ws = at::softplus(ws_raw);
    const at::Tensor bs = at::softplus(bs_raw);
    at::Tensor m_out = at::addmm(bm, m, wm);
    at::Tensor s_out = at::addmm(bs, m * m, ws);
    if (s.defined()) s_out = s_out + at::mm(s, ws) + at::mm(s, wm * wm);
    return {m_out, s_out};
  }
};

struct Npn {
  NpnDense l1, l2, l3;
  Npn() = default;
  Npn(int64_t in, at::Generator& gen) : l1(in, 32, gen), l2(32, 32, gen), l3(32, 1, gen) {}
  std::vector<at::Tensor> parameters() const {
    std::vector<at::Tensor> p;
    for (const NpnDense* l : {&l1, &l2, &l3})
      for (auto& t : l->parameters()) p.push_back(t);
    return p;
  }
  /// x [n, in] -> (mean [n], variance [n]).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x) const {
    auto [m, s] = l1(x, at::Tensor());
    std::tie(m, s) = npn_relu(m, s);
    std::tie(m, s) = l2(m, s);
    std::tie(m, s) = npn_relu(m, s);
    std::tie(m, s) = l3(m, s);
    std::tie(m, s) = npn_sigmoid(m, s);
    return {m.squeeze(1), s.squeeze(1).clamp_min(kVarFloor)};
  }
};

std::vector<at::Tensor> snapshot(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}
void load(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& values) {
  torch::NoGradGuard guard;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i]);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> npn_relu(const at::Tensor& m, const at::Tensor& s_in) {
  static const double kappa = std::sqrt(8.0 / M_PI);
  const at::Tensor s = s_in.clamp_min(kVarFloor);
  const at::Tensor sd = at::sqrt(s);
  const at::Tensor g = at::sigmoid(kappa * m / sd);
  const at::Tensor phi = sd / std::sqrt(2 * M_PI) * at::exp(-m * m / (2 * s));
  const at::Tensor m_out = g * m + phi;
  const at::Tensor s_out = g * (m * m + s) + m * phi - m_out * m_out;
  return {m_out, s_out.clamp_min(kVarFloor)};
}

std::pair<at::Tensor, at::Tensor> npn_sigmoid(const at::Tensor& m, const at::Tensor& s) {
  static const double xi2 = M_PI / 8.0;
  static const double alpha = 4.0 - 2.0 * std::sqrt(2.0);
  static const double beta = -std::log(std::sqrt(2.0) + 1.0);
  const at::Tensor m_out = at::sigmoid(m / at::sqrt(1 + xi2 * s));
  const at::Tensor s_out = at::sigmoid(alpha * (m + beta) / at::sqrt(1 + xi2 * alpha * alpha * s)) - m_out * m_out;
  return {m_out, s_out.clamp_min(kVarFloor)};
}

at::Tensor uncertainty(const SurrogatePrediction& p, bool aleatoric) {
  if (!aleatoric) return p.epistemic_std;
  return at::sqrt(p.epistemic_std * p.epistemic_std + p.aleatoric_var + 1e-12);
}

at::Tensor acquisition(const SurrogatePrediction& p, const AcquisitionSettings& s) {
  const at::Tensor u = uncertainty(p, s.aleatoric);
  if (s.uncertainty_only) return -u;
  return p.mean - s.k * u;
}

struct Surrogate::Impl {
  SurrogateOptions options;
  Mlp teacher, student;
  Npn npn;
  std::unique_ptr<torch::optim::AdamW> teacher_opt, npn_opt;
  std::unique_ptr<torch::optim::SGD> student_opt;
  bool fitted = false;

  explicit Impl(SurrogateOptions o) : options(o) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(o.seed, 100, 0));
    teacher = Mlp(o.input_dim, o.dropout, gen);
    student = Mlp(o.input_dim, 0.0, gen);
    npn = Npn(o.input_dim, gen);
    teacher_opt = std::make_unique<torch::optim::AdamW>(
        teacher.parameters(), torch::optim::AdamWOptions(o.teacher_lr).weight_decay(o.teacher_weight_decay));
    student_opt = std::make_unique<torch::optim::SGD>(student.parameters(), torch::optim::SGDOptions(o.student_lr));
    npn_opt = std::make_unique<torch::optim::AdamW>(npn.parameters(),
                                                     torch::optim::AdamWOptions(o.npn_lr).weight_decay(o.npn_weight_decay));
  }

  /// Mini-batch training of one network with early stopping; keeps the best-validation weights.
  /// `loss_fn(rows, sum)` returns the loss of those rows (mean, or sum when `sum`).
  template <typename LossFn>
  std::pair<int64_t, double> train(torch::optim::Optimizer& opt, const std::vector<at::Tensor>& params,
                                   const at::Tensor& train_rows, const at::Tensor& val_rows, LossFn loss_fn,
                                   bool summed, at::Generator& gen) {
    const int64_t n = train_rows.size(0);
    const bool has_val = val_rows.defined() && val_rows.numel() > 0;
    double best = std::numeric_limits<double>::infinity();
    std::vector<at::Tensor> best_params = snapshot(params);
    int64_t since_best = 0, epoch = 0;
    for (epoch = 0; epoch < options.max_epochs; ++epoch) {
      const at::Tensor perm = train_rows.index_select(0, at::randperm(n, gen, at::kLong));
      for (int64_t start = 0; start < n; start += options.batch_size) {
        const at::Tensor rows = perm.slice(0, start, std::min(n, start + options.batch_size));
        opt.zero_grad();
        loss_fn(rows, summed, &gen).backward();
        opt.step();
      }
      double loss;
      {
        torch::NoGradGuard guard;
        loss = loss_fn(has_val ? val_rows : train_rows, false, nullptr).template item<double>();
      }
      if (loss < best) {
        best = loss;
        best_params = snapshot(params);
        since_best = 0;
      } else if (++since_best >= options.patience && epoch + 1 > options.min_epochs) {
        ++epoch;
        break;
      }
    }
    load(params, best_params);
    return {epoch, best};
  }

  FitReport fit(const at::Tensor& x_in, const at::Tensor& y_in, uint64_t fit_seed) {
    const at::Tensor x = x_in.to(at::kFloat).contiguous();
    const at::Tensor y = y_in.to(at::kFloat).contiguous();
    const int64_t n = x.size(0);
    FLEXNAS_CHECK(n >= 1 && y.size(0) == n && x.size(1) == options.input_dim, "surrogate fit: x ", x.sizes(), " y ", y.sizes());
    FitReport report;
    report.samples = n;
    // Fixed split (defect 12 fix): row i's side is drawn once from (seed, i), never re-drawn.
    std::vector<int64_t> train_idx, val_idx;
    for (int64_t i = 0; i < n; ++i) {
      const double u = double(derive_seed(options.seed, 200, uint64_t(i)) >> 11) * 0x1.0p-53;
      (u < options.validation_fraction ? val_idx : train_idx).push_back(i);
    }
    if (int64_t(val_idx.size()) < options.min_validation || int64_t(train_idx.size()) < 1) {
      // Too little data for a validation set (a 1-sample data set works): train on all rows and
      // stop on the training loss.
      train_idx.clear();
      for (int64_t i = 0; i < n; ++i) train_idx.push_back(i);
      val_idx.clear();
    }
    const at::Tensor train_rows = at::tensor(train_idx, at::kLong);
    const at::Tensor val_rows = val_idx.empty() ? at::Tensor() : at::tensor(val_idx, at::kLong);
    report.train = int64_t(train_idx.size());
    report.validation = int64_t(val_idx.size());
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(fit_seed);

    // 1. Teacher: squared error (mean over the batch), dropout active while training.
    auto teacher_loss = [&](const at::Tensor& rows, bool, at::Generator* g) {
      return at::mse_loss(teacher.forward(x.index_select(0, rows), g), y.index_select(0, rows));
    };
    std::tie(report.epochs[0], report.validation_loss[0]) =
        train(*teacher_opt, teacher.parameters(), train_rows, val_rows, teacher_loss, false, gen);

    // 2. Student target: std (unbiased) of mc_samples MC-dropout teacher passes, detached (defect 13 fix).
    at::Tensor target;
    {
      torch::NoGradGuard guard;
      const at::Tensor reps = x.repeat({options.mc_samples, 1});             // [mc·n, d]
      const at::Tensor out = teacher.forward(reps, &gen).view({options.mc_samples, n});
      target = out.std(0, /*unbiased=*/true).detach();                        // [n]
    }
    auto student_loss = [&](const at::Tensor& rows, bool summed, at::Generator*) {
      const at::Tensor diff = student.forward(x.index_select(0, rows), nullptr) - target.index_select(0, rows);
      const at::Tensor se = diff * diff;
      return summed ? se.sum() : se.mean();
    };
    std::tie(report.epochs[1], report.validation_loss[1]) =
        train(*student_opt, student.parameters(), train_rows, val_rows, student_loss, true, gen);

    // 3. NPN: heteroscedastic negative log-likelihood 0.5·(w·(m − y)²/s + ln s).
    auto npn_loss = [&](const at::Tensor& rows, bool, at::Generator*) {
      auto [m, s] = npn.forward(x.index_select(0, rows));
      const at::Tensor diff = m - y.index_select(0, rows);
      return (0.5 * (options.npn_fit_weight * diff * diff / s + at::log(s))).mean();
    };
    std::tie(report.epochs[2], report.validation_loss[2]) =
        train(*npn_opt, npn.parameters(), train_rows, val_rows, npn_loss, false, gen);
    fitted = true;
    return report;
  }

  SurrogatePrediction forward(const at::Tensor& x) const {
    SurrogatePrediction p;
    auto [m, s] = npn.forward(x);
    p.aleatoric_var = s;
    p.mean = options.mean_from_npn ? m : teacher.forward(x, nullptr);
    p.epistemic_std = student.forward(x, nullptr);
    return p;
  }
};

Surrogate::Surrogate(SurrogateOptions options) : impl_(std::make_unique<Impl>(options)) {}
Surrogate::~Surrogate() = default;
Surrogate::Surrogate(Surrogate&&) noexcept = default;
Surrogate& Surrogate::operator=(Surrogate&&) noexcept = default;

FitReport Surrogate::fit(const at::Tensor& x, const at::Tensor& y, uint64_t fit_seed) { return impl_->fit(x, y, fit_seed); }

SurrogatePrediction Surrogate::predict(const at::Tensor& x) const {
  torch::NoGradGuard guard;
  return impl_->forward(x.to(at::kFloat));
}

SurrogatePrediction Surrogate::forward(const at::Tensor& x) const { return impl_->forward(x); }
bool Surrogate::fitted() const { return impl_->fitted; }
const SurrogateOptions& Surrogate::options() const { return impl_->options; }

}  // namespace flexnas::nas
