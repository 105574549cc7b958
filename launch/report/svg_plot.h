#pragma once
// Plain-SVG charts with round ticks, shared by the campaign report (report/trials.svg, pareto.svg,
// embedding.svg) and `flexnas probe`. No plotting dependency and no LibTorch: a chart is built as a
// string and opens in any browser; the same inputs always give the same bytes.
//
// The axes and their round ticks are in svg_axes.h.
#include <string>
#include <utility>
#include <vector>

#include "launch/report/svg_axes.h"

namespace flexnas::launch::plot {

std::string escape_xml(const std::string& s);

/// Viridis (dark purple -> yellow) at t in [0, 1], as "#rrggbb": a sequential colour scale.
std::string viridis(double t);

struct Series {
  std::string name;          // legend entry ("" = no legend entry)
  std::string colour;        // "#1f77b4"
  std::vector<double> x, y;  // same length
  bool line = true;          // join points by a polyline
  bool markers = true;       // draw a circle at each point
  std::vector<double> y_low, y_high;  // optional error bars (empty = none), same length as y
  std::string dash;          // "" solid, else SVG stroke-dasharray e.g. "4 3"
  // Additions (defaults keep the plain look):
  std::string marker = "circle";       // circle | ring (hollow) | diamond | star; only circles are <circle>
  double marker_radius = 3.5;          // px
  std::string marker_stroke;           // outline colour ("" = none; rings use `colour`)
  double opacity = 0.85;               // of markers
  double line_width = 1.5;             // px
  std::vector<double> colour_values;   // non-empty: marker fill from the chart's colour scale, same length as y
  std::vector<std::string> labels;     // optional text beside each point ("" = none), same length as y
};

struct LineChart {
  std::string title, x_title, y_title;
  std::vector<Series> series;
  std::vector<std::string> x_categories;  // non-empty: x values are indices 0..n-1 and these are their labels (rotated if long)
  bool log_x = false;
  double width = 640, height = 360;
  // Additions:
  bool log_y = false;
  double x_min_step = 0;          // 1: integer x ticks (trial numbers)
  bool x_si = false, y_si = false;  // tick labels as 200k, 1.5M, 2G
  std::string colour_bar_title;   // non-empty: series' colour_values on viridis, with a colour bar on the right
};

/// A complete, well-formed SVG document (white background, frame, round ticks on both axes, axis titles, legend when any series has a name).
std::string line_chart_svg(const LineChart& chart);
/// Several charts side by side in one document (each at its own width; height = the tallest), under
/// an optional overall title.
std::string charts_svg(const std::vector<LineChart>& charts, const std::string& title = "");

}  // namespace flexnas::launch::plot
