#pragma once
// The axes of the SVG charts (svg_plot.h). Axes are widened to round 1-2-5 values (nice_range) and
// ticked there (nice_ticks); log axes are ticked at 1, 2, 5 x 10^k (log_ticks). Labels carry no
// spurious digits (tick_label). No LibTorch (library flexnas_svg_plot).
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace flexnas::launch::plot {

/// Ticks at round 1-2-5 steps (…, 0.1, 0.2, 0.5, 1, 2, 5, 10, …) covering [lo, hi], about `target` of them
/// (never fewer than 2 unless lo == hi); every tick lies in [lo - step*1e-9, hi + step*1e-9] after the
/// caller widens the axis range to the outer ticks (see nice_range).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
/// [lo, hi] widened to the outer 1-2-5 ticks (lo==hi -> a unit interval around it). nice_ticks on the
/// result has a tick at both ends.
std::pair<double, double> nice_range(double lo, double hi, int target = 5);
/// Ticks for a log10 axis: round values (1, 2, 5 × 10^k, or only 10^k when the range spans many decades) within [lo, hi] (lo, hi > 0; values, not logs).
std::vector<double> log_ticks(double lo, double hi);
/// [lo, hi] (both > 0) widened for a log axis to round values that log_ticks puts a tick on: 1, 2, 5 × 10^k
/// (10^k over many decades); a narrow range (less than about 2.5x) is widened as nice_range does.
std::pair<double, double> log_range(double lo, double hi);
/// A tick label: no spurious digits ("0.7", "70", "2.5", "1M", "200k" when `si` is true).
std::string tick_label(double value, double step, bool si = false);
/// The 1-2-5 step nice_ticks uses for [lo, hi]; at least `min_step` (1: integer ticks) when that is > 0.
double nice_step(double lo, double hi, int target = 5, double min_step = 0);
/// Ticks at round steps covering [lo, hi] with a step of at least `min_step` (0: any).
std::vector<double> linear_ticks(double lo, double hi, int target, double min_step);

// What the charts draw axes and text with.
constexpr double kFontSize = 11;
/// Approximate width in px of `s` in the charts' sans-serif font.
double text_width(const std::string& s, double font_size = kFontSize);
/// `v` with `decimals` decimals, no "-0".
std::string fixed(double v, int decimals);
/// A coordinate: one decimal, no "-0.0".
std::string num(double v);

/// One axis of a chart: its range, ticks and their labels.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;
  double position(double v) const {  // 0..1 along the axis
    if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    return (v - lo) / (hi - lo);
  }
};
/// An axis over [lo, hi] (log or linear, about `target` ticks), labelled (`si`: 200k, 1.5M).
Axis value_axis(double lo, double hi, bool log, int target, double min_step, bool si);
/// Fewer ticks until neighbouring labels (widths `extent`) do not overlap over `length` px.
void thin_ticks(Axis& a, double length, bool si, double min_step, const std::function<double(const std::string&)>& extent);

}  // namespace flexnas::launch::plot
