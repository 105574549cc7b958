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


// ---- Hand-written derivatives for GOBI (forward-over-reverse) ----
//
// Every quantity is a dual number (value, tangent along the probe v). The forward pass runs on
// duals with x' = v; the reverse pass, written out per layer, then yields the adjoint of x whose
// value is ∇a and whose tangent is H v (the directional derivative of the gradient). Everything
// is double precision on a copy of the weights taken after each fit.

struct Dual {
  double v = 0, t = 0;
};
inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.t + b.t}; }
inline Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.t - b.t}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.t * b.v + a.v * b.t}; }
inline Dual operator*(double c, Dual a) { return {c * a.v, c * a.t}; }
inline Dual operator+(double c, Dual a) { return {c + a.v, a.t}; }
inline Dual operator/(Dual a, Dual b) { return {a.v / b.v, (a.t * b.v - a.v * b.t) / (b.v * b.v)}; }
inline Dual dsqrt(Dual a) {
  const double r = std::sqrt(a.v);
  return {r, a.t / (2 * r)};
}
inline Dual dexp(Dual a) {
  const double e = std::exp(a.v);
  return {e, e * a.t};
}
inline double sigmoid_d(double z) { return 1.0 / (1.0 + std::exp(-z)); }
inline Dual dsigmoid(Dual a) {
  const double s = sigmoid_d(a.v);
  return {s, s * (1 - s) * a.t};
}
/// softplus as torch computes it (threshold 20: linear above).
inline Dual dsoftplus(Dual a) {
  if (a.v > 20) return a;
  return {std::log1p(std::exp(a.v)), sigmoid_d(a.v) * a.t};
}
/// softplus' = sigmoid (1 above the threshold), on duals.
inline Dual dsoftplus_grad(Dual a) { return a.v > 20 ? Dual{1, 0} : dsigmoid(a); }
/// clamp_min(a, lo): torch passes the gradient where a >= lo.
inline Dual dclamp_min(Dual a, double lo) { return a.v >= lo ? a : Dual{lo, 0}; }

/// A dense layer's weights in double, w row-major [in][out].
struct DenseD {
  int64_t in = 0, out = 0;
  std::vector<double> w, b;
  void load(const at::Tensor& w_t, const at::Tensor& b_t) {
    const at::Tensor wd = w_t.detach().to(at::kDouble).contiguous(), bd = b_t.detach().to(at::kDouble).contiguous();
    in = wd.size(0), out = wd.size(1);
    w.assign(wd.data_ptr<double>(), wd.data_ptr<double>() + in * out);
    b.assign(bd.data_ptr<double>(), bd.data_ptr<double>() + out);
  }
  /// y[j] = b[j] + Σ_i x[i] w[i][j]
  void forward(const Dual* x, Dual* y) const {
    for (int64_t j = 0; j < out; ++j) y[j] = {b[size_t(j)], 0};
    for (int64_t i = 0; i < in; ++i) {
      const Dual xi = x[i];
      const double* wr = &w[size_t(i * out)];
      for (int64_t j = 0; j < out; ++j) y[j] = {y[j].v + xi.v * wr[j], y[j].t + xi.t * wr[j]};
    }
  }
  /// x̄[i] += Σ_j ȳ[j] w[i][j]
  void backward(const Dual* ybar, Dual* xbar) const {
    for (int64_t i = 0; i < in; ++i) {
      const double* wr = &w[size_t(i * out)];
      Dual acc = xbar[i];
      for (int64_t j = 0; j < out; ++j) acc = {acc.v + ybar[j].v * wr[j], acc.t + ybar[j].t * wr[j]};
      xbar[i] = acc;
    }
  }
};

/// Teacher (no dropout) / student: in -> 64 -> 32 -> 1, Softplus, Sigmoid.
struct MlpD {
  DenseD l1, l2, l3;
  void load(const Mlp& m) {
    l1.load(m.l1.w, m.l1.b);
    l2.load(m.l2.w, m.l2.b);
    l3.load(m.l3.w, m.l3.b);
  }
  struct Tape {
    std::vector<Dual> z1, h1, z2, h2;
    Dual z3, out;
  };
  void forward(const Dual* x, Tape& t) const {
    t.z1.resize(size_t(l1.out)), t.h1.resize(size_t(l1.out)), t.z2.resize(size_t(l2.out)), t.h2.resize(size_t(l2.out));
    l1.forward(x, t.z1.data());
    for (size_t j = 0; j < t.z1.size(); ++j) t.h1[j] = dsoftplus(t.z1[j]);
    l2.forward(t.h1.data(), t.z2.data());
    for (size_t j = 0; j < t.z2.size(); ++j) t.h2[j] = dsoftplus(t.z2[j]);
    l3.forward(t.h2.data(), &t.z3);
    t.out = dsigmoid(t.z3);
  }
  /// Adds out̄ · ∂out/∂x to xbar.
  void backward(const Tape& t, Dual outbar, Dual* xbar) const {
    const Dual z3bar = outbar * (t.out * (1.0 + (-1.0) * t.out));
    std::vector<Dual> h2bar(t.h2.size()), z2bar(t.z2.size()), h1bar(t.h1.size()), z1bar(t.z1.size());
    l3.backward(&z3bar, h2bar.data());
    for (size_t j = 0; j < z2bar.size(); ++j) z2bar[j] = h2bar[j] * dsoftplus_grad(t.z2[j]);
    l2.backward(z2bar.data(), h1bar.data());
    for (size_t j = 0; j < z1bar.size(); ++j) z1bar[j] = h1bar[j] * dsoftplus_grad(t.z1[j]);
    l1.backward(z1bar.data(), xbar);
  }
};

/// NPN layer in double: mean weights wm, variance weights ws = softplus(ws_raw), and wm² + ws.
struct NpnDenseD {
  DenseD mean, var_of_m2, var_of_s;  // (wm, bm), (ws, bs), (ws + wm², 0)
  void load(const NpnDense& l) {
    torch::NoGradGuard guard;
    const at::Tensor ws = at::softplus(l.ws_raw.to(at::kDouble)), bs = at::softplus(l.bs_raw.to(at::kDouble));
    const at::Tensor wm = l.wm.to(at::kDouble);
    mean.load(wm, l.bm);
    var_of_m2.load(ws, bs);
    var_of_s.load(ws + wm * wm, at::zeros_like(bs));
  }
  /// s == nullptr: zero input variance (first layer).
  void forward(const Dual* m, const Dual* s, Dual* m_out, Dual* s_out) const {
    const int64_t in = mean.in, out = mean.out;
    std::vector<Dual> m2(static_cast<size_t>(in)), extra(static_cast<size_t>(out));
    for (int64_t i = 0; i < in; ++i) m2[size_t(i)] = m[i] * m[i];
    mean.forward(m, m_out);
    var_of_m2.forward(m2.data(), s_out);
    if (s) {
      var_of_s.forward(s, extra.data());
      for (int64_t j = 0; j < out; ++j) s_out[j] = s_out[j] + extra[size_t(j)];
    }
  }
  void backward(const Dual* m, const Dual* mbar_out, const Dual* sbar_out, Dual* mbar, Dual* sbar) const {
    const int64_t in = mean.in;
    std::vector<Dual> m2bar(static_cast<size_t>(in));
    mean.backward(mbar_out, mbar);
    var_of_m2.backward(sbar_out, m2bar.data());
    for (int64_t i = 0; i < in; ++i) mbar[i] = mbar[i] + 2.0 * (m[i] * m2bar[size_t(i)]);
    if (sbar) var_of_s.backward(sbar_out, sbar);
  }
};

/// npn_relu on one element, with its local partial derivatives (as duals).
struct ReluD {
  Dual m_out, s_out, dm_dm, dm_ds, ds_dm, ds_ds;
};
ReluD npn_relu_d(Dual m, Dual s_in) {
  static const double kappa = std::sqrt(8.0 / M_PI), c = 1.0 / std::sqrt(2 * M_PI);
  const bool s_passes = s_in.v >= kVarFloor;
  const Dual s = dclamp_min(s_in, kVarFloor);
  const Dual sd = dsqrt(s);
  const Dual r = m / sd;
  const Dual g = dsigmoid(kappa * r);
  const Dual phi = c * (sd * dexp(-0.5 * (r * r)));
  ReluD o;
  o.m_out = g * m + phi;
  const Dual m2s = m * m + s;
  const Dual s_raw = g * m2s + m * phi - o.m_out * o.m_out;
  // ∂g/∂m = κ g(1−g)/√s, ∂g/∂s = −κ g(1−g) r/(2s); ∂φ/∂m = −m φ/s, ∂φ/∂s = φ(1 + r²)/(2s).
  const Dual gp = kappa * (g * (1.0 + (-1.0) * g));
  const Dual dg_dm = gp / sd, dg_ds = -0.5 * (gp * r / s);
  const Dual dphi_dm = -1.0 * (m * phi / s), dphi_ds = 0.5 * (phi * (1.0 + r * r) / s);
  o.dm_dm = g + m * dg_dm + dphi_dm;
  o.dm_ds = m * dg_ds + dphi_ds;
  o.ds_dm = dg_dm * m2s + 2.0 * (g * m) + phi + m * dphi_dm - 2.0 * (o.m_out * o.dm_dm);
  o.ds_ds = dg_ds * m2s + g + m * dphi_ds - 2.0 * (o.m_out * o.dm_ds);
  if (!s_passes) o.dm_ds = o.ds_ds = Dual{};
  if (s_raw.v < kVarFloor) o.ds_dm = o.ds_ds = Dual{};
  o.s_out = dclamp_min(s_raw, kVarFloor);
  return o;
}

/// npn_sigmoid on one element, with its local partial derivatives.
ReluD npn_sigmoid_d(Dual m, Dual s) {
  static const double xi2 = M_PI / 8.0, alpha = 4.0 - 2.0 * std::sqrt(2.0), beta = -std::log(std::sqrt(2.0) + 1.0);
  const Dual q1 = 1.0 + xi2 * s, q2 = 1.0 + (xi2 * alpha * alpha) * s;
  const Dual z1 = m / dsqrt(q1), z2 = alpha * (m + Dual{beta, 0}) / dsqrt(q2);
  const Dual m_out = dsigmoid(z1), t = dsigmoid(z2);
  const Dual sp1 = m_out * (1.0 + (-1.0) * m_out), sp2 = t * (1.0 + (-1.0) * t);
  ReluD o;
  o.m_out = m_out;
  o.dm_dm = sp1 / dsqrt(q1);
  o.dm_ds = -0.5 * xi2 * (sp1 * z1 / q1);
  const Dual dt_dm = alpha * (sp2 / dsqrt(q2)), dt_ds = -0.5 * xi2 * alpha * alpha * (sp2 * z2 / q2);
  const Dual s_raw = t - m_out * m_out;
  o.ds_dm = dt_dm - 2.0 * (m_out * o.dm_dm);
  o.ds_ds = dt_ds - 2.0 * (m_out * o.dm_ds);
  if (s_raw.v < kVarFloor) o.ds_dm = o.ds_ds = Dual{};
  o.s_out = dclamp_min(s_raw, kVarFloor);
  return o;
}

struct NpnD {
  NpnDenseD l1, l2, l3;
  void load(const Npn& n) {
    l1.load(n.l1);
    l2.load(n.l2);
    l3.load(n.l3);
  }
  struct Tape {
    std::vector<ReluD> r1, r2;
    std::vector<Dual> m1r, s1r, m2r, s2r;
    ReluD out;
  };
  void forward(const Dual* x, Tape& t) const {
    const size_t h1 = size_t(l1.mean.out), h2 = size_t(l2.mean.out);
    std::vector<Dual> m(std::max(h1, h2)), s(std::max(h1, h2));
    t.r1.resize(h1), t.r2.resize(h2), t.m1r.resize(h1), t.s1r.resize(h1), t.m2r.resize(h2), t.s2r.resize(h2);
    l1.forward(x, nullptr, m.data(), s.data());
    for (size_t j = 0; j < h1; ++j) {
      t.r1[j] = npn_relu_d(m[j], s[j]);
      t.m1r[j] = t.r1[j].m_out, t.s1r[j] = t.r1[j].s_out;
    }
    l2.forward(t.m1r.data(), t.s1r.data(), m.data(), s.data());
    for (size_t j = 0; j < h2; ++j) {
      t.r2[j] = npn_relu_d(m[j], s[j]);
      t.m2r[j] = t.r2[j].m_out, t.s2r[j] = t.r2[j].s_out;
    }
    Dual m3, s3;
    l3.forward(t.m2r.data(), t.s2r.data(), &m3, &s3);
    t.out = npn_sigmoid_d(m3, s3);  // Npn::forward's final clamp is the same floor (idempotent)
  }
  /// Adds m̄ · ∂mean/∂x + s̄ · ∂var/∂x to xbar.
  void backward(const Tape& t, Dual mbar, Dual sbar, const Dual* x, Dual* xbar) const {
    const Dual m3bar = mbar * t.out.dm_dm + sbar * t.out.ds_dm;
    const Dual s3bar = mbar * t.out.dm_ds + sbar * t.out.ds_ds;
    const size_t h1 = t.r1.size(), h2 = t.r2.size();
    std::vector<Dual> m2rbar(h2), s2rbar(h2), m2bar(h2), s2bar(h2), m1rbar(h1), s1rbar(h1), m1bar(h1), s1bar(h1);
    l3.backward(t.m2r.data(), &m3bar, &s3bar, m2rbar.data(), s2rbar.data());
    for (size_t j = 0; j < h2; ++j) {
      const ReluD& r = t.r2[j];
      m2bar[j] = m2rbar[j] * r.dm_dm + s2rbar[j] * r.ds_dm;
      s2bar[j] = m2rbar[j] * r.dm_ds + s2rbar[j] * r.ds_ds;
    }
    l2.backward(t.m1r.data(), m2bar.data(), s2bar.data(), m1rbar.data(), s1rbar.data());
    for (size_t j = 0; j < h1; ++j) {
      const ReluD& r = t.r1[j];
      m1bar[j] = m1rbar[j] * r.dm_dm + s1rbar[j] * r.ds_dm;
      s1bar[j] = m1rbar[j] * r.dm_ds + s1rbar[j] * r.ds_ds;
    }
    l1.backward(x, m1bar.data(), s1bar.data(), xbar, nullptr);
  }
};

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

const EnumNames<SurrogateModel>& surrogate_model_names() {
  static const EnumNames<SurrogateModel> names{{"networks", SurrogateModel::kNetworks}, {"gp", SurrogateModel::kGp}};
  return names;
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
  GaussianProcess gp;
  std::unique_ptr<torch::optim::AdamW> teacher_opt, npn_opt;
  std::unique_ptr<torch::optim::SGD> student_opt;
  bool fitted = false;
  // Double copies of the weights for acquisition_derivatives(), refreshed after every fit.
  MlpD teacher_d, student_d;
  NpnD npn_d;

  void freeze() {
    torch::NoGradGuard guard;
    teacher_d.load(teacher);
    student_d.load(student);
    npn_d.load(npn);
  }

  bool use_gp() const { return options.model == SurrogateModel::kGp; }
  /// The aleatoric variance is the GP's noise s²·g (homoscedastic), not the NPN's.
  bool gp_noise() const { return use_gp() && !options.gp_npn && gp.fitted(); }

  explicit Impl(SurrogateOptions o) : options(o), gp(o.gp) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(o.seed, 100, 0));
    teacher = Mlp(o.input_dim, o.dropout, gen);
    student = Mlp(o.input_dim, 0.0, gen);
    npn = Npn(o.input_dim, gen);
    teacher_opt = std::make_unique<torch::optim::AdamW>(
        teacher.parameters(), torch::optim::AdamWOptions(o.teacher_lr).weight_decay(o.teacher_weight_decay));
    student_opt = std::make_unique<torch::optim::SGD>(student.parameters(), torch::optim::SGDOptions(o.student_lr));
    npn_opt = std::make_unique<torch::optim::AdamW>(npn.parameters(),
                                                     torch::optim::AdamWOptions(o.npn_lr).weight_decay(o.npn_weight_decay));
    freeze();
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

    if (use_gp()) gp.fit(x, y);  // mean and epistemic std; the networks below are not needed for them
    // 1. Teacher: squared error (mean over the batch), dropout active while training.
    auto teacher_loss = [&](const at::Tensor& rows, bool, at::Generator* g) {
      return at::mse_loss(teacher.forward(x.index_select(0, rows), g), y.index_select(0, rows));
    };
    if (!use_gp())
      std::tie(report.epochs[0], report.validation_loss[0]) =
          train(*teacher_opt, teacher.parameters(), train_rows, val_rows, teacher_loss, false, gen);

    // 2. Student target: std (unbiased) of mc_samples MC-dropout teacher passes, detached (defect 13 fix).
    at::Tensor target;
    if (!use_gp()) {
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
    if (!use_gp())
      std::tie(report.epochs[1], report.validation_loss[1]) =
          train(*student_opt, student.parameters(), train_rows, val_rows, student_loss, true, gen);

    // 3. NPN: heteroscedastic negative log-likelihood 0.5·(w·(m − y)²/s + ln s).
    auto npn_loss = [&](const at::Tensor& rows, bool, at::Generator*) {
      auto [m, s] = npn.forward(x.index_select(0, rows));
      const at::Tensor diff = m - y.index_select(0, rows);
      return (0.5 * (options.npn_fit_weight * diff * diff / s + at::log(s))).mean();
    };
    if (!use_gp() || options.gp_npn)
      std::tie(report.epochs[2], report.validation_loss[2]) =
          train(*npn_opt, npn.parameters(), train_rows, val_rows, npn_loss, false, gen);
    fitted = true;
    freeze();
    return report;
  }

  SurrogatePrediction forward(const at::Tensor& x) const {
    SurrogatePrediction p;
    auto [m, s] = npn.forward(x);
    p.aleatoric_var = s;
    if (use_gp() && gp.fitted()) {
      auto [gm, gs] = gp.forward(x);  // kDouble; the networks' outputs are kFloat
      p.mean = gm.to(x.scalar_type());
      p.epistemic_std = gs.to(x.scalar_type());
      if (gp_noise()) p.aleatoric_var = at::full_like(p.mean, gp.hyper().signal_var * gp.hyper().noise);
      return p;
    }
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

Surrogate::Derivatives Surrogate::acquisition_derivatives(const at::Tensor& x_in, const at::Tensor& probes_in,
                                                          const AcquisitionSettings& settings) const {
  const at::Tensor x = x_in.detach().to(at::kDouble).contiguous();
  const at::Tensor probes = probes_in.detach().to(at::kDouble).contiguous();
  FLEXNAS_CHECK(x.dim() == 2 && x.size(1) == impl_->options.input_dim, "acquisition_derivatives: x ", x.sizes());
  FLEXNAS_CHECK(probes.dim() == 3 && probes.size(1) == x.size(0) && probes.size(2) == x.size(1),
                "acquisition_derivatives: probes ", probes.sizes(), " for x ", x.sizes());
  const int64_t K = x.size(0), d = x.size(1), P = probes.size(0);
  Derivatives out;
  out.value = at::zeros({K}, at::kDouble);
  out.grad = at::zeros({K, d}, at::kDouble);
  out.diag = at::zeros({K, d}, at::kDouble);
  const double* xp = x.data_ptr<double>();
  const double* vp = probes.data_ptr<double>();
  double* value = out.value.data_ptr<double>();
  double* grad = out.grad.data_ptr<double>();
  double* diag = out.diag.data_ptr<double>();
  const Impl& im = *impl_;
  std::vector<Dual> xd(static_cast<size_t>(d)), xbar(static_cast<size_t>(d));
  MlpD::Tape mean_tape, ep_tape;
  NpnD::Tape npn_tape;
  const bool gp = im.use_gp() && im.gp.fitted();
  GaussianProcess::RowDerivatives gd;
  std::vector<double> xrow(static_cast<size_t>(d)), wrow(static_cast<size_t>(d));
  // A GP output as a dual along the probe: (value, ∇·w).
  auto gp_dual = [&](double value, const std::vector<double>& grad) {
    double t = 0;
    for (int64_t i = 0; i < d; ++i) t += grad[size_t(i)] * wrow[size_t(i)];
    return Dual{value, t};
  };
  // x̄ += f̄ ∇f on duals: value f̄·∇f, tangent f̄'·∇f + f̄·(H w).
  auto gp_backward = [&](Dual fbar, const std::vector<double>& grad, const std::vector<double>& hv) {
    for (int64_t i = 0; i < d; ++i)
      xbar[size_t(i)] = xbar[size_t(i)] + Dual{fbar.v * grad[size_t(i)], fbar.t * grad[size_t(i)] + fbar.v * hv[size_t(i)]};
  };
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t p = 0; p < std::max<int64_t>(P, 1); ++p) {
      for (int64_t i = 0; i < d; ++i) xd[size_t(i)] = {xp[k * d + i], P > 0 ? vp[(p * K + k) * d + i] : 0.0};
      // Forward: μ (GP, NPN mean or teacher), σ_ep (GP or student), σ²_al (NPN variance).
      Dual mu, ep;
      if (gp) {
        for (int64_t i = 0; i < d; ++i) xrow[size_t(i)] = xd[size_t(i)].v, wrow[size_t(i)] = xd[size_t(i)].t;
        im.gp.row_derivatives(xrow.data(), wrow.data(), gd);
        mu = gp_dual(gd.mean, gd.mean_grad);
        ep = gp_dual(gd.std, gd.std_grad);
        if (settings.aleatoric && !im.gp_noise()) im.npn_d.forward(xd.data(), npn_tape);
      } else {
        im.npn_d.forward(xd.data(), npn_tape);
        im.student_d.forward(xd.data(), ep_tape);
        if (!im.options.mean_from_npn) im.teacher_d.forward(xd.data(), mean_tape);
        mu = im.options.mean_from_npn ? npn_tape.out.m_out : mean_tape.out;
        ep = ep_tape.out;
      }
      Dual u = ep;
      const Dual al = im.gp_noise() ? Dual{im.gp.hyper().signal_var * im.gp.hyper().noise, 0} : npn_tape.out.s_out;
      if (settings.aleatoric) u = dsqrt(ep * ep + al + Dual{1e-12, 0});
      const Dual a = settings.uncertainty_only ? -1.0 * u : mu - settings.k * u;
      // Reverse: ā = 1; ū = −k (or −1); ∂u/∂σ_ep = σ_ep/u, ∂u/∂σ²_al = 1/(2u) in the aleatoric phase.
      const Dual ubar{settings.uncertainty_only ? -1.0 : -settings.k, 0};
      const Dual mubar{settings.uncertainty_only ? 0.0 : 1.0, 0};
      Dual epbar = ubar, sbar{};
      if (settings.aleatoric) {
        epbar = ubar * ep / u;
        sbar = 0.5 * (ubar / u);
      }
      std::fill(xbar.begin(), xbar.end(), Dual{});
      if (gp) {
        gp_backward(mubar, gd.mean_grad, gd.mean_hv);
        gp_backward(epbar, gd.std_grad, gd.std_hv);
        if (settings.aleatoric && !im.gp_noise()) im.npn_d.backward(npn_tape, Dual{}, sbar, xd.data(), xbar.data());
      } else if (im.options.mean_from_npn) im.npn_d.backward(npn_tape, mubar, sbar, xd.data(), xbar.data());
      else {
        im.teacher_d.backward(mean_tape, mubar, xbar.data());
        if (settings.aleatoric) im.npn_d.backward(npn_tape, Dual{}, sbar, xd.data(), xbar.data());
      }
      if (!gp) im.student_d.backward(ep_tape, epbar, xbar.data());
      if (p == 0) {
        value[k] = a.v;
        for (int64_t i = 0; i < d; ++i) grad[k * d + i] = xbar[size_t(i)].v;
      }
      if (P > 0)
        for (int64_t i = 0; i < d; ++i) diag[k * d + i] += xd[size_t(i)].t * xbar[size_t(i)].t / double(P);
    }
  }
  return out;
}
bool Surrogate::fitted() const { return impl_->fitted; }
const SurrogateOptions& Surrogate::options() const { return impl_->options; }
const GaussianProcess& Surrogate::gp() const { return impl_->gp; }

}  // namespace flexnas::nas
