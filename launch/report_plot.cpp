#include "launch/report_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "launch/campaign.h"
#include "nas/pareto.h"

namespace flexnas::launch {
namespace {

constexpr double kPanelWidth = 460, kPanelHeight = 300;
constexpr double kLeft = 64, kRight = 16, kTop = 36, kBottom = 44;  // margins inside a panel

struct Point {
  double x, y;
  bool own_level;  // false: taken over from a parent campaign
};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

/// [lo, hi] padded by 5%, or lo +- 1 when all values are equal.
std::pair<double, double> padded_range(double lo, double hi) {
  if (hi - lo < 1e-12) return {lo - 1, hi + 1};
  const double pad = 0.05 * (hi - lo);
  return {lo - pad, hi + pad};
}

/// One panel at horizontal offset `x0`: frame, 5 ticks per axis over the data, points, and `line`
/// as a polyline.
/// `x_label_of` turns an x coordinate into its tick label (log axes print 10^x).
template <typename Label>
void panel(std::ostringstream& svg, double x0, const std::string& title, const std::string& x_title,
           const std::string& y_title, const std::vector<Point>& points, const std::vector<std::pair<double, double>>& line,
           const std::string& line_colour, bool integer_x, Label x_label_of) {
  std::vector<double> xs, ys;
  for (const Point& p : points) xs.push_back(p.x), ys.push_back(p.y);
  // Ticks span the data, not the padding; `integer_x` rounds them (trial numbers).
  const auto [x_min_it, x_max_it] = std::minmax_element(xs.begin(), xs.end());
  const auto [y_min_it, y_max_it] = std::minmax_element(ys.begin(), ys.end());
  const double x_min = *x_min_it, x_max = *x_max_it, y_min = *y_min_it, y_max = *y_max_it;
  const auto [x_lo, x_hi] = padded_range(x_min, x_max);
  const auto [y_lo, y_hi] = padded_range(y_min, y_max);
  const double w = kPanelWidth - kLeft - kRight, h = kPanelHeight - kTop - kBottom;
  auto px = [&](double x) { return x0 + kLeft + (x - x_lo) / (x_hi - x_lo) * w; };
  auto py = [&](double y) { return kTop + h - (y - y_lo) / (y_hi - y_lo) * h; };
  svg << "<text x='" << x0 + kPanelWidth / 2 << "' y='20' text-anchor='middle' font-weight='bold'>" << escape(title)
      << "</text>\n";
  svg << "<rect x='" << x0 + kLeft << "' y='" << kTop << "' width='" << w << "' height='" << h
      << "' fill='none' stroke='#444'/>\n";
  for (int i = 0; i <= (x_max > x_min ? 4 : 0); ++i) {
    double xv = x_min + (x_max - x_min) * i / 4;
    if (integer_x) xv = std::round(xv);
    svg << "<text x='" << px(xv) << "' y='" << kTop + h + 16 << "' text-anchor='middle' font-size='11'>"
        << x_label_of(xv) << "</text>\n";
  }
  for (int i = 0; i <= (y_max > y_min ? 4 : 0); ++i) {
    const double yv = y_min + (y_max - y_min) * i / 4;
    svg << "<text x='" << x0 + kLeft - 6 << "' y='" << py(yv) + 4 << "' text-anchor='end' font-size='11'>" << number(yv)
        << "</text>\n";
  }
  svg << "<text x='" << x0 + kLeft + w / 2 << "' y='" << kPanelHeight - 8 << "' text-anchor='middle' font-size='12'>"
      << escape(x_title) << "</text>\n";
  svg << "<text transform='translate(" << x0 + 14 << "," << kTop + h / 2
      << ") rotate(-90)' text-anchor='middle' font-size='12'>" << escape(y_title) << "</text>\n";
  if (line.size() > 1) {
    svg << "<polyline fill='none' stroke='" << line_colour << "' stroke-width='1.5' points='";
    for (const auto& [x, y] : line) svg << px(x) << "," << py(y) << " ";
    svg << "'/>\n";
  }
  for (const Point& p : points)
    svg << "<circle cx='" << px(p.x) << "' cy='" << py(p.y) << "' r='3.5' fill='" << (p.own_level ? "#1f77b4" : "#999")
        << "' fill-opacity='0.8'/>\n";
}

}  // namespace

std::string trials_svg(const std::vector<TrialRow>& trials, const std::string& metric, bool maximise,
                       int64_t campaign_level) {
  std::vector<const TrialRow*> done;
  int64_t failed = 0;
  for (const TrialRow& t : trials) {
    if (t.status == trial_status::kCompleted && t.value) done.push_back(&t);
    failed += t.status == trial_status::kFailed;
  }
  std::sort(done.begin(), done.end(), [](const TrialRow* a, const TrialRow* b) { return a->id < b->id; });
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << 2 * kPanelWidth << "' height='" << kPanelHeight
      << "' font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n";
  if (done.empty()) {
    svg << "<text x='20' y='40'>no completed trials yet (" << failed << " failed)</text>\n</svg>\n";
    return svg.str();
  }
  auto better = [&](double a, double b) { return maximise ? a > b : a < b; };

  // Left: value by trial number; best so far in trial order.
  std::vector<Point> by_trial;
  std::vector<std::pair<double, double>> best_line;
  double best = *done.front()->value;
  for (const TrialRow* t : done) {
    by_trial.push_back({double(t->id), *t->value, trial_level(*t, campaign_level) == campaign_level});
    if (better(*t->value, best)) {
      best_line.push_back({double(t->id), best});  // a step: flat until this trial, then up
      best = *t->value;
    }
    best_line.push_back({double(t->id), best});
  }
  const std::string direction = maximise ? "higher is better" : "lower is better";
  panel(svg, 0, metric + " by trial (" + std::to_string(done.size()) + " done, " + std::to_string(failed) + " failed)",
        "trial", metric + " (" + direction + ")", by_trial, best_line, "#d62728", true,
        [](double x) { return number(x); });

  // Right: value against parameters (log10), Pareto front (fewer parameters, better value) from
  // small to large.
  std::vector<Point> by_size;
  std::vector<nas::Point2> objectives;  // both minimised
  for (const TrialRow* t : done)
    if (t->parameters > 0) {
      by_size.push_back({std::log10(double(t->parameters)), *t->value, trial_level(*t, campaign_level) == campaign_level});
      objectives.push_back({double(t->parameters), maximise ? -*t->value : *t->value});
    }
  if (!by_size.empty()) {
    std::vector<std::pair<double, double>> front;
    for (int64_t i : nas::pareto_front_2d(objectives)) front.push_back({by_size[size_t(i)].x, by_size[size_t(i)].y});
    panel(svg, kPanelWidth, metric + " against size (Pareto front joined)", "parameters",
          metric, by_size, front, "#2ca02c", false, [](double x) { return number(std::pow(10.0, x) / 1e6) + "M"; });
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace flexnas::launch
