#pragma once
// The BOSHNAS heteroscedastic surrogate (spec §3.2): a teacher (MC-dropout MLP) for the mean, a
// student for the epistemic uncertainty, and a natural-parameter network (NPN) for the aleatoric
// mean and variance — batched, seeded, warm-started across refits.
//
// With model = "gp" (the default) a Gaussian process on the same inputs (nas/gp.h) gives the mean
// and the epistemic std instead of the NPN/teacher and the student, and its noise variance the
// aleatoric one (the NPN's with gp_npn): the spec's networks ranked unseen architectures worse
// than a ridge regression (bench/RESULTS-nas.md, "Latest").
//
// Inputs x: [n, d]: nas::surrogate_inputs (boshnas.h): the library embedding (16 wide by default)
// and, with inputs = "embedding+dict" (the default), the model-dict features after it; each column
// standardised over the library.
// Targets y: [n] in (0, 1): the normalised loss (lower is better), see BoshnasPolicy.
// Everything runs on the CPU on purpose: the networks are d->64->32->1 MLPs, far too small to
// gain from a GPU (kernel launches would dominate); nothing here depends on the device type.
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "design_space/enum_names.h"
#include "nas/gp.h"

namespace flexnas::nas {

/// What gives the surrogate's mean and epistemic std: "networks" (spec §3.2: the NPN or teacher
/// mean, the student's std, the NPN's aleatoric variance) or "gp" (GaussianProcess mean, latent
/// std and noise variance; see SurrogateOptions::gp_npn).
enum class SurrogateModel { kNetworks, kGp };
const EnumNames<SurrogateModel>& surrogate_model_names();  // networks, gp

/// NPN moment propagation (spec §3.2), elementwise on means m and variances s (same shape).
/// ReLU (κ = √(8/π)): m' = g·m + φ, s' = g·(m² + s) + m·φ − m'², g = σ(κ m/√s), φ = √s/√(2π)·e^{−m²/2s}.
std::pair<at::Tensor, at::Tensor> npn_relu(const at::Tensor& m, const at::Tensor& s);
/// Sigmoid (ξ² = π/8, α = 4 − 2√2, β = −ln(√2 + 1)):
/// m' = σ(m / √(1 + ξ² s)), s' = σ(α(m + β) / √(1 + ξ² α² s)) − m'².
std::pair<at::Tensor, at::Tensor> npn_sigmoid(const at::Tensor& m, const at::Tensor& s);

struct SurrogateOptions {
  int64_t input_dim = 16;
  uint64_t seed = 0;                 // initial weights; every fit also gets its own seed
  // Mini-batch training with a fixed split and early stopping (defect 12 fix).
  int64_t batch_size = 32;
  int64_t max_epochs = 200;          // EPOCHS
  int64_t min_epochs = 10;           // early stopping needs more than 10 validation losses (spec)
  int64_t patience = 7;              // stop after 7 epochs without a better validation loss (spec)
  double validation_fraction = 0.2;  // 1 - Train_test_split
  int64_t min_validation = 2;        // fewer validation samples: train on all, stop on training loss
  // Teacher: AdamW lr 2·LR = 0.002, weight decay 0.01, dropout 0.3 (spec).
  double teacher_lr = 0.002;
  double teacher_weight_decay = 0.01;
  double dropout = 0.3;
  int64_t mc_samples = 10;           // teacher passes in train mode for the student's target
  // Student: SGD lr 0.002 (spec). The loss is SUMMED over the mini-batch so that one epoch moves
  // the weights as far as the reference's per-sample steps did.
  double student_lr = 0.002;
  // NPN: AdamW. The reference's 5e-5 was tuned for one step per sample; with 32 samples per step
  // (32x fewer steps) the same number of epochs needs a larger step.
  double npn_lr = 2e-3;
  double npn_weight_decay = 0.01;
  double npn_fit_weight = 10.0;      // loss 0.5·(10·(m−y)²/s + ln s)
  bool mean_from_npn = true;         // aleatoric mode (campaign): μ from the NPN, else the teacher
  // "gp" by default: it ranks unseen NAS-Bench-BERT architectures at least as well as ridge after
  // 25 and 50 results where the networks did not (bench/RESULTS-nas.md); with "gp" the teacher and
  // student are not trained and mean_from_npn is not used.
  SurrogateModel model = SurrogateModel::kGp;
  GpOptions gp;
  // With "gp": false = the aleatoric variance is the GP's fitted noise s²·g (homoscedastic; a
  // tabular benchmark has no noise to model, and no network is trained, so a refit takes
  // milliseconds); true = the NPN is trained and gives it, as in spec §3.2.
  bool gp_npn = false;
};

/// μ (normalised loss), σ_ep (student), σ²_al (NPN variance); each [n].
struct SurrogatePrediction {
  at::Tensor mean, epistemic_std, aleatoric_var;
};

struct FitReport {
  int64_t samples = 0, train = 0, validation = 0;
  int64_t epochs[3] = {0, 0, 0};     // teacher, student, npn (0 for nets not trained)
  double validation_loss[3] = {0, 0, 0};
};

/// The acquisition of spec §3.3, minimised: a = μ − k·u with u = σ_ep, or, in the aleatoric phase,
/// u = √(σ_ep² + σ²_al) (defect 13 fix: a standard deviation combined with a standard deviation).
struct AcquisitionSettings {
  double k = 0.5;
  bool aleatoric = false;
  bool uncertainty_only = false;  // 'unc' mode: a = −u
};

class Surrogate {
 public:
  explicit Surrogate(SurrogateOptions options = {});
  ~Surrogate();
  Surrogate(Surrogate&&) noexcept;
  Surrogate& operator=(Surrogate&&) noexcept;

  /// Trains teacher, student, then NPN on (x [n,d], y [n]), warm-starting from the previous fit.
  /// Row i keeps its train/validation assignment across fits (data sets grow by appending).
  FitReport fit(const at::Tensor& x, const at::Tensor& y, uint64_t fit_seed);
  /// Predictions without autograd (whole library in one batch).
  SurrogatePrediction predict(const at::Tensor& x) const;
  /// Same, differentiable with respect to x (parameters are not trained here): the autograd
  /// reference for acquisition_derivatives().
  SurrogatePrediction forward(const at::Tensor& x) const;
  /// GOBI's inner loop: for each row of x [K, d] and each probe v of probes [P, K, d], the
  /// acquisition a(x) [K], its gradient [K, d] and the Hutchinson term mean_p v_p ∘ (H v_p) [K, d],
  /// all kDouble. Exact derivatives written out by hand (forward-over-reverse with dual numbers on
  /// a double copy of the weights): the same values autograd's double backward gives, without
  /// hundreds of dispatched tensor ops per iteration (tested against it).
  struct Derivatives {
    at::Tensor value, grad, diag;
  };
  Derivatives acquisition_derivatives(const at::Tensor& x, const at::Tensor& probes,
                                      const AcquisitionSettings& settings) const;
  bool fitted() const;
  const SurrogateOptions& options() const;
  /// The Gaussian process (model "gp"; not fitted with "networks").
  const GaussianProcess& gp() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

at::Tensor uncertainty(const SurrogatePrediction& p, bool aleatoric);
at::Tensor acquisition(const SurrogatePrediction& p, const AcquisitionSettings& settings);

}  // namespace flexnas::nas
