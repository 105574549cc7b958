// The axes of the SVG charts: round 1-2-5 ticks, log ticks, tick labels without spurious digits
// (see svg_axes.h).
#include "launch/report/svg_axes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <tuple>

namespace flexnas::launch::plot {
namespace {

constexpr double kTol = 1e-9;       // relative slack when comparing ticks with range ends
constexpr double kCharWidth = 6.3;  // approximate advance of an 11 px sans-serif character

/// m * 10^k computed as a division for negative k, so 3 * 0.1 comes out as 0.3.
double scaled(double m, int k) { return k >= 0 ? m * std::pow(10.0, k) : m / std::pow(10.0, -k); }

/// i * step where step = m * 10^k: the tick value nearest to the decimal one.
double multiple(double i, double m, int k) { return scaled(i * m, k); }

struct Step {
  double m = 1;  // 1, 2 or 5
  int k = 0;     // step = m * 10^k
  double value() const { return scaled(m, k); }
};

/// Ticks i * step inside [lo - step*tol, hi + step*tol].
std::vector<double> ticks_at(double lo, double hi, const Step& s) {
  const double step = s.value();
  std::vector<double> out;
  const double first = std::ceil(lo / step - kTol), last = std::floor(hi / step + kTol);
  for (double i = first; i <= last && out.size() < 10000; ++i) out.push_back(multiple(i, s.m, s.k));
  return out;
}

/// The 1-2-5 step whose outer ticks (widening [lo, hi] to multiples of the step) number closest to
/// `target` while widening the range least: score |count - target| + 4 * (share of the widened range
/// that is padding); ties go to the larger step. At least `min_step` when that is > 0. On a range
/// already widened with step s, s pads nothing, so it keeps being chosen.
Step choose_step(double lo, double hi, int target, double min_step) {
  target = std::max(target, 2);
  const double span = hi - lo;
  const int e = int(std::floor(std::log10(span / target)));
  Step best;
  double best_score = std::numeric_limits<double>::infinity();
  bool found = false;
  for (int k = e - 1; k <= e + 2; ++k)
    for (double m : {1.0, 2.0, 5.0}) {
      const Step s{m, k};
      const double step = s.value();
      if (min_step > 0 && step < min_step * (1 - kTol)) continue;
      const double first = std::floor(lo / step + kTol), last = std::ceil(hi / step - kTol);
      const double n = last - first + 1, covered = (last - first) * step;
      if (n < 2) continue;
      const double score = std::abs(n - target) + 4 * (covered - span) / covered;
      if (score < best_score || (score == best_score && step > best.value())) best = s, best_score = score, found = true;
    }
  if (!found) {  // every candidate is below min_step: the smallest 1-2-5 step at least min_step
    int k = int(std::floor(std::log10(min_step)));
    for (;; ++k)
      for (double m : {1.0, 2.0, 5.0})
        if (scaled(m, k) >= min_step * (1 - kTol)) return Step{m, k};
  }
  return best;
}

Step step_below(const Step& s) {
  if (s.m == 5) return {2, s.k};
  if (s.m == 2) return {1, s.k};
  return {5, s.k - 1};
}

/// The interval nice_range gives for a single value: a unit interval, or a tenth of the value's order
/// of magnitude for |v| >= 10.
std::pair<double, double> around(double v) {
  const double a = std::abs(v);
  const double half = a >= 10 ? 0.5 * std::pow(10.0, std::floor(std::log10(a)) - 1) : 0.5;
  return {v - half, v + half};
}

std::pair<double, double> widen(double lo, double hi, int target, double min_step) {
  if (!(lo <= hi)) std::swap(lo, hi);
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) std::tie(lo, hi) = around(lo);
  // Widening to the outer ticks can change the step nice_ticks picks; repeat until it does not.
  for (int i = 0; i < 16; ++i) {
    const Step s = choose_step(lo, hi, target, min_step);
    const double step = s.value();
    const double nlo = multiple(std::floor(lo / step + kTol), s.m, s.k);
    const double nhi = multiple(std::ceil(hi / step - kTol), s.m, s.k);
    const bool same = std::abs(nlo - lo) <= step * kTol && std::abs(nhi - hi) <= step * kTol;
    lo = nlo, hi = nhi;
    if (same) break;
  }
  return {lo, hi};
}

}  // namespace

std::vector<double> linear_ticks(double lo, double hi, int target, double min_step) {
  if (!(lo <= hi)) std::swap(lo, hi);
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) return {lo};
  Step s = choose_step(lo, hi, target, min_step);
  std::vector<double> t = ticks_at(lo, hi, s);
  for (int i = 0; t.size() < 2 && i < 6; ++i) {  // a step too coarse for this range: finer
    const Step finer = step_below(s);
    if (min_step > 0 && finer.value() < min_step * (1 - kTol)) break;
    s = finer;
    t = ticks_at(lo, hi, s);
  }
  return t;
}

namespace {

bool is_power_of_ten(double v) {
  const double l = std::log10(v);
  return std::abs(l - std::round(l)) < 1e-9;
}

/// Round values m * 10^k (m in `mantissas`) inside [lo, hi] (relative slack).
std::vector<double> decade_values(double lo, double hi, const std::vector<double>& mantissas) {
  std::vector<double> out;
  const int k0 = int(std::floor(std::log10(lo))) - 1, k1 = int(std::ceil(std::log10(hi))) + 1;
  for (int k = k0; k <= k1; ++k)
    for (double m : mantissas) {
      const double v = scaled(m, k);
      if (v >= lo * (1 - kTol) && v <= hi * (1 + kTol)) out.push_back(v);
    }
  return out;
}

/// Over many decades, every `stride`-th power of ten from the first: at most 7 of them.
int decade_stride(int decades) { return decades > 7 ? int(std::ceil(decades / 6.0)) : 1; }

double largest_125_at_most(double v) {
  const int k = int(std::floor(std::log10(v)));
  for (int kk = k + 1; kk >= k - 1; --kk)
    for (double m : {5.0, 2.0, 1.0})
      if (scaled(m, kk) <= v * (1 + kTol)) return scaled(m, kk);
  return v;
}

double smallest_125_at_least(double v) {
  const int k = int(std::floor(std::log10(v)));
  for (int kk = k - 1; kk <= k + 1; ++kk)
    for (double m : {1.0, 2.0, 5.0})
      if (scaled(m, kk) >= v * (1 - kTol)) return scaled(m, kk);
  return v;
}

constexpr double kManyDecades = 1.7;  // wider than this (in decades): ticks at 10^k only

/// `v` with the decimals step `s` needs, or fewer when `v` needs fewer (0.7 rather than 0.70).
std::string decimal(double v, double s) {
  int need = 0;
  while (need < 12) {
    const double scaled_step = s * std::pow(10.0, need);
    if (std::abs(scaled_step - std::round(scaled_step)) <= 1e-6 * std::max(1.0, scaled_step)) break;
    ++need;
  }
  int decimals = 0;
  while (decimals < need) {
    const double p = std::pow(10.0, decimals);
    if (std::abs(v - std::round(v * p) / p) <= s * 1e-6) break;
    ++decimals;
  }
  return fixed(v, decimals);
}

void label_ticks(Axis& a, bool si) {
  a.labels.clear();
  double step = 0;
  for (size_t i = 1; i < a.ticks.size(); ++i) {
    const double d = std::abs(a.ticks[i] - a.ticks[i - 1]);
    if (d > 0 && (step == 0 || d < step)) step = d;
  }
  for (double t : a.ticks) a.labels.push_back(tick_label(t, a.log || step == 0 ? std::abs(t) : step, si));
}

}  // namespace

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0"
  return s;
}

/// A coordinate: one decimal, no "-0.0".
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = fixed(v, 1);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s == "-0" ? "0" : s;
}

double text_width(const std::string& s, double font_size) {
  return double(s.size()) * kCharWidth * font_size / kFontSize;
}

Axis value_axis(double lo, double hi, bool log, int target, double min_step, bool si) {
  Axis a;
  a.log = log;
  if (log) {
    std::tie(a.lo, a.hi) = log_range(lo, hi);
    a.ticks = log_ticks(a.lo, a.hi);
  } else {
    std::tie(a.lo, a.hi) = widen(lo, hi, target, min_step);
    a.ticks = linear_ticks(a.lo, a.hi, target, min_step);
  }
  label_ticks(a, si);
  return a;
}

/// Fewer ticks until neighbouring labels (widths `extent`) do not overlap over `length` px.
void thin_ticks(Axis& a, double length, bool si, double min_step, const std::function<double(const std::string&)>& extent) {
  auto overlaps = [&] {
    for (size_t i = 1; i < a.ticks.size(); ++i) {
      const double gap = (a.position(a.ticks[i]) - a.position(a.ticks[i - 1])) * length;
      if (gap < 0.5 * (extent(a.labels[i]) + extent(a.labels[i - 1])) + 8) return true;
    }
    return false;
  };
  for (int round = 0; round < 8 && a.ticks.size() > 2 && overlaps(); ++round) {
    if (!a.log) {  // a coarser step over the same range (widened again so both ends stay ticks)
      const int target = std::max(2, int(a.ticks.size()) - 2);
      std::tie(a.lo, a.hi) = widen(a.lo, a.hi, target, min_step);
      a.ticks = linear_ticks(a.lo, a.hi, target, min_step);
    } else {
      std::vector<double> powers;
      for (double t : a.ticks)
        if (is_power_of_ten(t)) powers.push_back(t);
      std::vector<double> kept;
      if (powers.size() >= 2 && powers.size() < a.ticks.size()) {
        kept = powers;
      } else {
        for (size_t i = 0; i < a.ticks.size(); i += 2) kept.push_back(a.ticks[i]);
      }
      a.ticks = kept;
    }
    label_ticks(a, si);
  }
}

double nice_step(double lo, double hi, int target, double min_step) {
  if (!(lo <= hi)) std::swap(lo, hi);
  if (!std::isfinite(lo) || !std::isfinite(hi)) return 1;
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) std::tie(lo, hi) = around(lo);
  return choose_step(lo, hi, target, min_step).value();
}

std::vector<double> nice_ticks(double lo, double hi, int target) { return linear_ticks(lo, hi, target, 0); }

std::pair<double, double> nice_range(double lo, double hi, int target) { return widen(lo, hi, target, 0); }

std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo <= hi)) std::swap(lo, hi);
  if (!(lo > 0) || !std::isfinite(hi)) return {};
  const double decades = std::log10(hi / lo);
  std::vector<double> powers = decade_values(lo, hi, {1.0});
  if (powers.size() > 8) {  // every stride-th from the first
    const int stride = decade_stride(int(powers.size()) - 1);
    std::vector<double> kept;
    for (size_t i = 0; i < powers.size(); i += size_t(stride)) kept.push_back(powers[i]);
    powers = kept;
  }
  if (decades > kManyDecades && powers.size() >= 3) return powers;
  std::vector<double> ones_twos_fives = decade_values(lo, hi, {1.0, 2.0, 5.0});
  if (ones_twos_fives.size() >= 3 && ones_twos_fives.size() <= 9) return ones_twos_fives;
  std::vector<double> linear;  // a narrow range (under a decade or so): round linear ticks
  if (decades < 1.1)
    for (double t : nice_ticks(lo, hi, 4))
      if (t > 0) linear.push_back(t);
  if (linear.size() >= 2) return linear;
  if (ones_twos_fives.size() >= 2 && ones_twos_fives.size() <= 9) return ones_twos_fives;
  return powers;
}

std::pair<double, double> log_range(double lo, double hi) {
  if (!(lo <= hi)) std::swap(lo, hi);
  if (!(lo > 0) || !std::isfinite(hi)) return {1, 10};
  auto ends_are_ticks = [](double a, double b) {
    const std::vector<double> t = log_ticks(a, b);
    return t.size() >= 2 && std::abs(t.front() - a) <= a * 1e-9 && std::abs(t.back() - b) <= b * 1e-9;
  };
  // Candidates, the tightest whose ends log_ticks ticks wins: round linear ends (under a decade),
  // 1-2-5 ends, powers of ten (the last one on log_ticks' stride).
  std::vector<std::pair<double, double>> candidates;
  if (hi / lo < 10) {
    const auto [a, b] = nice_range(lo, hi, 4);
    if (a > 0) candidates.push_back({a, b});
  }
  candidates.push_back({largest_125_at_most(lo), smallest_125_at_least(hi)});
  const int k0 = int(std::floor(std::log10(lo) + 1e-9));
  int k1 = std::max(k0 + 1, int(std::ceil(std::log10(hi) - 1e-9)));
  for (int i = 0; i < 8; ++i) {
    const int stride = decade_stride(k1 - k0);
    if ((k1 - k0) % stride == 0) break;
    k1 = k0 + (k1 - k0 + stride - 1) / stride * stride;
  }
  candidates.push_back({scaled(1, k0), scaled(1, k1)});
  std::pair<double, double> best = candidates.back();
  for (const auto& [a, b] : candidates)
    if (a < b && ends_are_ticks(a, b) && b / a < best.second / best.first) best = {a, b};
  return best;
}

std::string tick_label(double value, double step, bool si) {
  if (!std::isfinite(value)) return value != value ? "nan" : (value > 0 ? "inf" : "-inf");
  step = std::abs(step);
  if (!(step > 0) || !std::isfinite(step)) step = std::abs(value) > 0 ? std::abs(value) : 1;
  if (std::abs(value) < step * 1e-9) value = 0;
  std::string unit;
  double divisor = 1;
  if (si) {
    const double a = std::abs(value);
    const std::array<std::pair<double, const char*>, 4> units = {{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}}};
    for (const auto& [d, u] : units)
      if (a >= d * (1 - 1e-12)) {
        divisor = d, unit = u;
        break;
      }
  }
  const double v = value / divisor, s = step / divisor;
  if (!si && v != 0 && (s < 1e-4 || std::abs(v) >= 1e10)) {  // tiny steps or huge values: 2.5e-7, 3e12
    const int k = int(std::floor(std::log10(std::abs(v)) + 1e-9));
    const double p = std::pow(10.0, k);
    return decimal(v / p, s / p) + "e" + std::to_string(k);
  }
  return decimal(v, s) + unit;
}
}  // namespace flexnas::launch::plot
