// The SVG charts: markers, series, legends, colour bars and whole documents (see svg_plot.h); the
// axes and their ticks are in svg_axes.cpp.
#include "launch/report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace flexnas::launch::plot {
namespace {

constexpr double kPi = 3.14159265358979323846;

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
