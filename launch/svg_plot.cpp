#include "launch/svg_plot.h"

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
constexpr double kFontSize = 11;
constexpr double kPi = 3.14159265358979323846;

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

std::string fixed(double v, int decimals);

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

double text_width(const std::string& s, double font_size = kFontSize) {
  return double(s.size()) * kCharWidth * font_size / kFontSize;
}

// ---- axes ----

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

void label_ticks(Axis& a, bool si) {
  a.labels.clear();
  double step = 0;
  for (size_t i = 1; i < a.ticks.size(); ++i) {
    const double d = std::abs(a.ticks[i] - a.ticks[i - 1]);
    if (d > 0 && (step == 0 || d < step)) step = d;
  }
  for (double t : a.ticks) a.labels.push_back(tick_label(t, a.log || step == 0 ? std::abs(t) : step, si));
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
template <typename Extent>
void thin_ticks(Axis& a, double length, bool si, double min_step, Extent extent) {
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

// ---- drawing ----

struct Frame {
  double left, top, width, height;  // the plot area inside the chart
};

bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }

void marker_svg(std::ostringstream& svg, const std::string& shape, double x, double y, double r,
                const std::string& fill, const std::string& stroke) {
  const std::string stroke_attr = stroke.empty() ? "" : " stroke='" + stroke + "' stroke-width='1.2'";
  if (shape == "ring") {
    svg << "<circle cx='" << num(x) << "' cy='" << num(y) << "' r='" << num(r) << "' fill='none' stroke='"
        << (stroke.empty() ? fill : stroke) << "' stroke-width='2'/>\n";
  } else if (shape == "diamond") {
    svg << "<polygon points='" << num(x) << "," << num(y - r * 1.3) << " " << num(x + r * 1.3) << "," << num(y) << " "
        << num(x) << "," << num(y + r * 1.3) << " " << num(x - r * 1.3) << "," << num(y) << "' fill='" << fill << "'"
        << stroke_attr << "/>\n";
  } else if (shape == "star") {
    svg << "<polygon points='";
    for (int i = 0; i < 10; ++i) {
      const double angle = -kPi / 2 + i * kPi / 5, rr = (i % 2 ? 0.45 : 1.0) * r * 1.6;
      svg << (i ? " " : "") << num(x + rr * std::cos(angle)) << "," << num(y + rr * std::sin(angle));
    }
    svg << "' fill='" << fill << "'" << stroke_attr << "/>\n";
  } else {
    svg << "<circle cx='" << num(x) << "' cy='" << num(y) << "' r='" << num(r) << "'";
    if (!fill.empty()) svg << " fill='" << fill << "'";
    svg << stroke_attr << "/>\n";
  }
}

struct LegendItem {
  const Series* series;
  double x, y;
};

/// Legend items laid out in rows across `width` from `left`, starting at `top`; returns the rows.
std::vector<LegendItem> layout_legend(const LineChart& chart, double left, double top, double width) {
  std::vector<LegendItem> items;
  double x = left, y = top;
  for (const Series& s : chart.series) {
    if (s.name.empty()) continue;
    const double w = 26 + text_width(s.name) + 16;
    if (x > left && x + w > left + width) x = left, y += 16;
    items.push_back({&s, x, y});
    x += w;
  }
  return items;
}

void draw_chart(std::ostringstream& svg, const LineChart& chart) {
  const double W = chart.width, H = chart.height;
  svg << "<rect width='" << num(W) << "' height='" << num(H) << "' fill='white'/>\n";
  if (!chart.title.empty())
    svg << "<text x='" << num(W / 2) << "' y='20' text-anchor='middle' font-size='13' font-weight='bold'>"
        << escape_xml(chart.title) << "</text>\n";

  // Legend rows under the title, then the plot area.
  const double legend_left = 16, legend_width = W - 32;
  const std::vector<LegendItem> legend = layout_legend(chart, legend_left, chart.title.empty() ? 16 : 38, legend_width);
  double top = chart.title.empty() ? 14 : 32;
  if (!legend.empty()) top = legend.back().y + 14;
  top += 6;

  // Data extents.
  const bool categories = !chart.x_categories.empty();
  const bool log_x = chart.log_x && !categories;
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min, y_min = x_min, y_max = -x_min;
  double c_min = x_min, c_max = -x_min;
  for (const Series& s : chart.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], log_x) || !usable(s.y[i], chart.log_y)) continue;
      x_min = std::min(x_min, s.x[i]), x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]), y_max = std::max(y_max, s.y[i]);
      for (const auto* bars : {&s.y_low, &s.y_high})
        if (i < bars->size() && usable((*bars)[i], chart.log_y))
          y_min = std::min(y_min, (*bars)[i]), y_max = std::max(y_max, (*bars)[i]);
      if (i < s.colour_values.size() && std::isfinite(s.colour_values[i]))
        c_min = std::min(c_min, s.colour_values[i]), c_max = std::max(c_max, s.colour_values[i]);
    }
  const bool empty = !(x_min <= x_max);
  const bool colour_bar = !chart.colour_bar_title.empty() && c_min <= c_max;

  // Bottom margin: tick labels (categories may be rotated) and the x title.
  double bottom = 44;
  double category_angle = 0, category_every = 1;
  const double right_reserve = colour_bar ? 96 : 0;
  if (categories) {
    double widest = 0;
    for (const std::string& c : chart.x_categories) widest = std::max(widest, text_width(c));
    const double guess_width = W - 70 - 16 - right_reserve;
    const double spacing = guess_width / double(chart.x_categories.size());
    if (widest > spacing - 6) {
      category_angle = 40;
      category_every = std::max(1.0, std::ceil(16.0 / spacing));  // rotated labels need ~16 px each
      bottom = 30 + std::min(widest, 160.0) * std::sin(category_angle * kPi / 180) + 12;
    }
  }
  const double plot_h = std::max(40.0, H - top - bottom);

  // The y axis first (its labels set the left margin), then x.
  Axis y_axis = empty ? Axis{} : value_axis(y_min, y_max, chart.log_y, std::clamp(int(std::lround(plot_h / 40)), 4, 8), 0, chart.y_si);
  thin_ticks(y_axis, plot_h, chart.y_si, 0, [](const std::string&) { return 14.0; });
  double widest_y = 0;
  for (const std::string& l : y_axis.labels) widest_y = std::max(widest_y, text_width(l));
  const double left = 8 + (chart.y_title.empty() ? 0 : 16) + widest_y + 8;
  const double right = 16 + right_reserve;
  const double plot_w = std::max(40.0, W - left - right);
  Axis x_axis;
  if (categories) {
    x_axis.lo = -0.5, x_axis.hi = double(chart.x_categories.size()) - 0.5;
    for (size_t i = 0; i < chart.x_categories.size(); ++i)
      if (i % size_t(category_every) == 0) x_axis.ticks.push_back(double(i)), x_axis.labels.push_back(chart.x_categories[i]);
  } else if (!empty) {
    x_axis = value_axis(x_min, x_max, log_x, std::clamp(int(std::lround(plot_w / 80)), 3, 8), chart.x_min_step, chart.x_si);
    thin_ticks(x_axis, plot_w, chart.x_si, chart.x_min_step, [](const std::string& l) { return text_width(l); });
  }
  const Frame f{left, top, plot_w, plot_h};
  // The axis ranges end a few pixels inside the frame: points on a range end do not sit on it.
  const double inset = 6;
  auto px = [&](double x) { return f.left + inset + x_axis.position(x) * (f.width - 2 * inset); };
  auto py = [&](double y) { return f.top + f.height - inset - y_axis.position(y) * (f.height - 2 * inset); };

  // Grid, frame, ticks, labels, titles.
  svg << "<g stroke='#e8e8e8' stroke-width='1'>\n";
  if (!empty) {
    for (double t : y_axis.ticks)
      svg << "<line x1='" << num(f.left) << "' y1='" << num(py(t)) << "' x2='" << num(f.left + f.width) << "' y2='"
          << num(py(t)) << "'/>\n";
    for (double t : x_axis.ticks)
      svg << "<line x1='" << num(px(t)) << "' y1='" << num(f.top) << "' x2='" << num(px(t)) << "' y2='"
          << num(f.top + f.height) << "'/>\n";
  }
  svg << "</g>\n<rect x='" << num(f.left) << "' y='" << num(f.top) << "' width='" << num(f.width) << "' height='"
      << num(f.height) << "' fill='none' stroke='#444'/>\n";
  if (empty)
    svg << "<text x='" << num(f.left + f.width / 2) << "' y='" << num(f.top + f.height / 2)
        << "' text-anchor='middle' fill='#666'>no data</text>\n";
  svg << "<g stroke='#444'>\n";
  for (double t : y_axis.ticks)
    svg << "<line x1='" << num(f.left - 4) << "' y1='" << num(py(t)) << "' x2='" << num(f.left) << "' y2='" << num(py(t))
        << "'/>\n";
  for (double t : x_axis.ticks)
    svg << "<line x1='" << num(px(t)) << "' y1='" << num(f.top + f.height) << "' x2='" << num(px(t)) << "' y2='"
        << num(f.top + f.height + 4) << "'/>\n";
  svg << "</g>\n";
  for (size_t i = 0; i < y_axis.ticks.size(); ++i)
    svg << "<text x='" << num(f.left - 7) << "' y='" << num(py(y_axis.ticks[i]) + 4) << "' text-anchor='end'>"
        << escape_xml(y_axis.labels[i]) << "</text>\n";
  for (size_t i = 0; i < x_axis.ticks.size(); ++i) {
    const double x = px(x_axis.ticks[i]), y = f.top + f.height + 16;
    if (category_angle > 0)
      svg << "<text transform='translate(" << num(x + 3) << "," << num(y - 6) << ") rotate(-" << num(category_angle)
          << ")' text-anchor='end'>" << escape_xml(x_axis.labels[i]) << "</text>\n";
    else
      svg << "<text x='" << num(x) << "' y='" << num(y) << "' text-anchor='middle'>" << escape_xml(x_axis.labels[i])
          << "</text>\n";
  }
  if (!chart.x_title.empty())
    svg << "<text x='" << num(f.left + f.width / 2) << "' y='" << num(H - 10) << "' text-anchor='middle' font-size='12'>"
        << escape_xml(chart.x_title) << "</text>\n";
  if (!chart.y_title.empty())
    svg << "<text transform='translate(" << num(14) << "," << num(f.top + f.height / 2)
        << ") rotate(-90)' text-anchor='middle' font-size='12'>" << escape_xml(chart.y_title) << "</text>\n";

  // Series, in order (later ones on top).
  auto colour_of = [&](double v) {
    return viridis(c_max > c_min ? (v - c_min) / (c_max - c_min) : 0.5);
  };
  struct Box {
    double x, y, w, h;
    bool overlaps(const Box& o) const { return x < o.x + o.w && o.x < x + w && y < o.y + o.h && o.y < y + h; }
  };
  std::vector<Box> placed;  // point labels drawn so far
  for (const Series& s : chart.series) {
    if (empty) break;
    const size_t n = std::min(s.x.size(), s.y.size());
    auto ok = [&](size_t i) { return usable(s.x[i], log_x) && usable(s.y[i], chart.log_y); };
    if (s.line) {  // one polyline per run of usable points
      std::vector<std::string> run;
      auto flush = [&] {
        if (run.size() > 1) {
          svg << "<polyline fill='none' stroke='" << s.colour << "' stroke-width='" << num(s.line_width) << "'";
          if (!s.dash.empty()) svg << " stroke-dasharray='" << escape_xml(s.dash) << "'";
          svg << " points='";
          for (size_t i = 0; i < run.size(); ++i) svg << (i ? " " : "") << run[i];
          svg << "'/>\n";
        }
        run.clear();
      };
      for (size_t i = 0; i < n; ++i) {
        if (ok(i)) run.push_back(num(px(s.x[i])) + "," + num(py(s.y[i])));
        else flush();
      }
      flush();
    }
    if (!s.y_low.empty() || !s.y_high.empty()) {
      svg << "<g stroke='" << s.colour << "' stroke-width='1'>\n";
      for (size_t i = 0; i < n; ++i) {
        if (!ok(i)) continue;
        const double lo = i < s.y_low.size() && usable(s.y_low[i], chart.log_y) ? s.y_low[i] : s.y[i];
        const double hi = i < s.y_high.size() && usable(s.y_high[i], chart.log_y) ? s.y_high[i] : s.y[i];
        const double x = px(s.x[i]);
        svg << "<path d='M" << num(x) << " " << num(py(lo)) << "V" << num(py(hi)) << "M" << num(x - 3) << " "
            << num(py(lo)) << "h6M" << num(x - 3) << " " << num(py(hi)) << "h6'/>\n";
      }
      svg << "</g>\n";
    }
    if (s.markers) {
      const bool per_point = !s.colour_values.empty() && colour_bar;
      svg << "<g fill='" << s.colour << "' fill-opacity='" << fixed(std::clamp(s.opacity, 0.0, 1.0), 2) << "'>\n";
      for (size_t i = 0; i < n; ++i) {
        if (!ok(i)) continue;
        std::string fill;
        if (per_point && i < s.colour_values.size() && std::isfinite(s.colour_values[i])) fill = colour_of(s.colour_values[i]);
        else if (s.marker != "circle") fill = s.colour;
        marker_svg(svg, s.marker, px(s.x[i]), py(s.y[i]), s.marker_radius, fill, s.marker_stroke);
      }
      svg << "</g>\n";
    }
    // Point labels: above right, above left, below right or below left of the point, whichever is
    // first free of the labels placed before and inside the frame; none when all four collide.
    for (size_t i = 0; i < n && i < s.labels.size(); ++i) {
      if (!ok(i) || s.labels[i].empty()) continue;
      const double x = px(s.x[i]), y = py(s.y[i]), r = s.marker_radius, w = text_width(s.labels[i]) * 1.1 + 2;
      for (int place = 0; place < 4; ++place) {
        const bool left_side = place % 2 == 1, below = place >= 2;
        const Box box{left_side ? x - r - 2 - w : x + r + 2, below ? y + r + 1 : y - r - 13, w, 12};
        if (box.x < f.left || box.x + box.w > f.left + f.width || box.y < f.top || box.y + box.h > f.top + f.height) continue;
        if (std::any_of(placed.begin(), placed.end(), [&](const Box& b) { return b.overlaps(box); })) continue;
        placed.push_back(box);
        svg << "<text x='" << num(left_side ? box.x + box.w : box.x) << "' y='" << num(box.y + 10) << "' text-anchor='"
            << (left_side ? "end" : "start") << "' stroke='white' stroke-width='3' paint-order='stroke' font-weight='bold'>"
            << escape_xml(s.labels[i]) << "</text>\n";
        break;
      }
    }
  }

  // Legend.
  for (const LegendItem& item : legend) {
    const Series& s = *item.series;
    const double y = item.y - 4;
    if (s.line) {
      svg << "<line x1='" << num(item.x) << "' y1='" << num(y) << "' x2='" << num(item.x + 20) << "' y2='" << num(y)
          << "' stroke='" << s.colour << "' stroke-width='" << num(s.line_width) << "'";
      if (!s.dash.empty()) svg << " stroke-dasharray='" << escape_xml(s.dash) << "'";
      svg << "/>\n";
    }
    if (s.markers) {  // not a <circle>: a document's circles are its data points
      const double r = std::min(s.marker_radius, 5.0);
      const std::string fill = !s.colour_values.empty() && colour_bar ? viridis(0.7) : s.colour;
      if (s.marker == "circle" || s.marker == "ring")
        svg << "<rect x='" << num(item.x + 10 - r) << "' y='" << num(y - r) << "' width='" << num(2 * r) << "' height='"
            << num(2 * r) << "' rx='" << num(r) << "' fill='" << (s.marker == "ring" ? "none" : fill) << "'"
            << (s.marker == "ring" || !s.marker_stroke.empty()
                    ? " stroke='" + (s.marker_stroke.empty() ? fill : s.marker_stroke) + "' stroke-width='1.5'"
                    : std::string())
            << "/>\n";
      else
        marker_svg(svg, s.marker, item.x + 10, y, r, fill, s.marker_stroke);
    }
    svg << "<text x='" << num(item.x + 26) << "' y='" << num(item.y) << "'>" << escape_xml(s.name) << "</text>\n";
  }

  // Colour bar.
  if (colour_bar) {
    const double bx = f.left + f.width + 22, bw = 12;
    svg << "<defs><linearGradient id='colour-bar' x1='0' y1='1' x2='0' y2='0'>\n";
    for (int i = 0; i <= 8; ++i)
      svg << "<stop offset='" << num(i * 12.5) << "%' stop-color='" << viridis(i / 8.0) << "'/>\n";
    svg << "</linearGradient></defs>\n<rect x='" << num(bx) << "' y='" << num(f.top) << "' width='" << num(bw)
        << "' height='" << num(f.height) << "' fill='url(#colour-bar)' stroke='#444'/>\n";
    const std::vector<double> ticks =
        c_max > c_min ? linear_ticks(c_min, c_max, std::clamp(int(f.height / 45), 3, 7), 0) : std::vector<double>{c_min};
    double step = ticks.size() > 1 ? ticks[1] - ticks[0] : std::abs(c_min);
    for (double t : ticks) {
      const double y = c_max > c_min ? f.top + f.height - (t - c_min) / (c_max - c_min) * f.height : f.top + f.height / 2;
      svg << "<line x1='" << num(bx + bw) << "' y1='" << num(y) << "' x2='" << num(bx + bw + 4) << "' y2='" << num(y)
          << "' stroke='#444'/>\n<text x='" << num(bx + bw + 6) << "' y='" << num(y + 4) << "'>"
          << escape_xml(tick_label(t, step)) << "</text>\n";
    }
    svg << "<text transform='translate(" << num(W - 8) << "," << num(f.top + f.height / 2)
        << ") rotate(-90)' text-anchor='middle' font-size='12'>" << escape_xml(chart.colour_bar_title) << "</text>\n";
  }
}

std::string document_open(double width, double height) {
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << num(width) << "' height='" << num(height) << "' viewBox='0 0 "
    << num(width) << " " << num(height) << "' font-family='sans-serif' font-size='" << num(kFontSize) << "'>\n";
  return s.str();
}

}  // namespace

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

std::string escape_xml(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';  // not allowed in XML 1.0
        else out += c;
    }
  }
  return out;
}

std::string viridis(double t) {
  static const std::array<std::array<int, 3>, 9> kStops = {{{68, 1, 84},
                                                            {71, 45, 123},
                                                            {59, 82, 139},
                                                            {44, 114, 142},
                                                            {33, 145, 140},
                                                            {40, 174, 128},
                                                            {94, 201, 98},
                                                            {173, 220, 48},
                                                            {253, 231, 37}}};
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * 8;
  const int i = std::min(7, int(std::floor(t)));
  const double u = t - i;
  char buf[8];
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = int(std::lround(kStops[size_t(i)][size_t(c)] * (1 - u) + kStops[size_t(i) + 1][size_t(c)] * u));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

std::string line_chart_svg(const LineChart& chart) {
  std::ostringstream svg;
  svg << document_open(chart.width, chart.height);
  draw_chart(svg, chart);
  svg << "</svg>\n";
  return svg.str();
}

std::string charts_svg(const std::vector<LineChart>& charts, const std::string& title) {
  double width = 0, height = 0;
  for (const LineChart& c : charts) width += c.width, height = std::max(height, c.height);
  const double top = title.empty() ? 0 : 26;
  std::ostringstream svg;
  svg << document_open(std::max(width, 1.0), height + top);
  svg << "<rect width='100%' height='100%' fill='white'/>\n";
  if (!title.empty())
    svg << "<text x='" << num(width / 2) << "' y='19' text-anchor='middle' font-size='14' font-weight='bold'>"
        << escape_xml(title) << "</text>\n";
  double x = 0;
  for (const LineChart& c : charts) {
    svg << "<g transform='translate(" << num(x) << "," << num(top) << ")'>\n";
    draw_chart(svg, c);
    svg << "</g>\n";
    x += c.width;
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace flexnas::launch::plot
