// launch/report/svg_axes and svg_plot: round 1-2-5 ticks, log ticks, labels, and charts that are well-formed SVG.
#include "launch/report/svg_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <regex>

#include "tests/launch/xml_check.h"

using namespace flexnas::launch::plot;
using flexnas::testing_xml::check_xml;

namespace {

/// True when v = m * 10^k with m in {1, 2, 5} (up to rounding).
bool is_125(double v) {
  v = std::abs(v);
  if (v == 0) return false;
  const double mantissa = v / std::pow(10.0, std::floor(std::log10(v) + 1e-12));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (std::abs(mantissa - m) < 1e-9 * m) return true;
  return false;
}

/// Ticks equally spaced at a 1-2-5 step, each a whole multiple of it; returns the step.
double check_round(const std::vector<double>& ticks) {
  EXPECT_GE(ticks.size(), 2u);
  if (ticks.size() < 2) return 0;
  const double step = ticks[1] - ticks[0];
  EXPECT_TRUE(is_125(step)) << step;
  for (size_t i = 0; i < ticks.size(); ++i) {
    EXPECT_NEAR(ticks[i], ticks[0] + double(i) * step, step * 1e-9);
    EXPECT_NEAR(ticks[i] / step, std::round(ticks[i] / step), 1e-9) << ticks[i];
  }
  return step;
}

std::vector<double> expect_ticks(double lo, double hi) {
  const auto [a, b] = nice_range(lo, hi);
  EXPECT_LE(a, lo);
  EXPECT_GE(b, hi);
  const std::vector<double> t = nice_ticks(a, b);
  const double step = check_round(t);
  if (!t.empty()) {
    EXPECT_NEAR(t.front(), a, step * 1e-9) << "range end is a tick";
    EXPECT_NEAR(t.back(), b, step * 1e-9) << "range end is a tick";
  }
  return t;
}

Series series(const std::string& name, const std::string& colour, std::vector<double> x, std::vector<double> y,
              bool line = true, bool markers = true) {
  Series s;
  s.name = name, s.colour = colour, s.x = std::move(x), s.y = std::move(y), s.line = line, s.markers = markers;
  return s;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(SvgTicks, OneTwoFiveStepsOnTheReportRanges) {
  // The old report's ticks were 66.31, 70.31, 74.32 and 4.717M, 6.598M: now round.
  EXPECT_EQ(expect_ticks(66.31, 74.32), (std::vector<double>{66, 68, 70, 72, 74, 76}));
  EXPECT_EQ(expect_ticks(0, 59), (std::vector<double>{0, 20, 40, 60}));
  EXPECT_EQ(expect_ticks(4.717e6, 9.229e6), (std::vector<double>{4e6, 6e6, 8e6, 10e6}));
  EXPECT_EQ(expect_ticks(0.343, 0.9034), (std::vector<double>{0.2, 0.4, 0.6, 0.8, 1.0}));
  // Inside a range: only the ticks there, never fewer than two.
  EXPECT_EQ(nice_ticks(66.31, 74.32), (std::vector<double>{68, 70, 72, 74}));
  EXPECT_EQ(nice_ticks(3, 3), (std::vector<double>{3}));
  const std::vector<double> small = nice_ticks(0.0012, 0.0019);
  check_round(small);
  for (double t : small) EXPECT_TRUE(t >= 0.0012 && t <= 0.0019) << t;
  // Negative and reversed ranges.
  expect_ticks(-3.7, 12.2);
  EXPECT_EQ(nice_ticks(10, 0), nice_ticks(0, 10));
  // A single value: a unit interval around it.
  const auto [lo, hi] = nice_range(3, 3);
  EXPECT_LT(lo, 3);
  EXPECT_GT(hi, 3);
  EXPECT_LE(hi - lo, 2);
}

TEST(SvgTicks, RandomRangesGetRoundTicksWithTheRangeEndsOnTicks) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-6, 9), unit(0, 1);
  for (int trial = 0; trial < 3000; ++trial) {
    const double scale = std::pow(10.0, exponent(rng));
    const double lo = (unit(rng) - 0.3) * scale, hi = lo + unit(rng) * scale + scale * 1e-6;
    const auto [a, b] = nice_range(lo, hi);
    ASSERT_LE(a, lo);
    ASSERT_GE(b, hi);
    const std::vector<double> t = nice_ticks(a, b);
    ASSERT_GE(t.size(), 2u) << lo << " " << hi;
    ASSERT_LE(t.size(), 11u) << lo << " " << hi;
    const double step = t[1] - t[0];
    ASSERT_TRUE(is_125(step)) << lo << " " << hi << " step " << step;
    ASSERT_NEAR(t.front(), a, step * 1e-9) << lo << " " << hi;
    ASSERT_NEAR(t.back(), b, step * 1e-9) << lo << " " << hi;
    for (double v : t) ASSERT_TRUE(v >= a - step * 1e-9 && v <= b + step * 1e-9);
    ASSERT_NEAR(nice_step(a, b), step, step * 1e-9);
  }
  // Integer axes (trial numbers) never get a fractional step.
  for (int n = 0; n < 300; ++n) {
    const double step = nice_step(0, n, 5, 1);
    ASSERT_GE(step, 1.0) << n;
    ASSERT_TRUE(is_125(step)) << n;
  }
}

TEST(SvgTicks, LogTicksAtRoundValues) {
  EXPECT_EQ(log_ticks(5e6, 2e7), (std::vector<double>{5e6, 1e7, 2e7}));
  EXPECT_EQ(log_ticks(1e3, 1e9), (std::vector<double>{1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}));
  EXPECT_EQ(log_ticks(0.01, 1), (std::vector<double>{0.01, 0.1, 1}));
  EXPECT_EQ(log_ticks(1.5, 60), (std::vector<double>{2, 5, 10, 20, 50}));
  // Very many decades: every few decades only.
  const std::vector<double> wide = log_ticks(1e-10, 1e20);
  EXPECT_LE(wide.size(), 8u);
  for (double t : wide) EXPECT_NEAR(std::log10(t), std::round(std::log10(t)), 1e-9);
  // Narrow: round linear ticks inside.
  const std::vector<double> narrow = log_ticks(6.4e6, 6.6e6);
  check_round(narrow);
  for (double t : narrow) EXPECT_TRUE(t >= 6.4e6 && t <= 6.6e6);
  // log_range widens to values that log_ticks ticks, both ends included.
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{
           {6.376e6, 15.06e6}, {4.717e6, 9.229e6}, {1.2e5, 3.4e8}, {73.9, 181.9}, {0.3, 0.31}, {1, 1}, {2e-3, 7e4}, {3e-12, 4e15}, {1e-3, 1e7}}) {
    const auto [a, b] = log_range(lo, hi);
    EXPECT_LE(a, lo);
    EXPECT_GE(b, hi);
    const std::vector<double> t = log_ticks(a, b);
    ASSERT_GE(t.size(), 2u) << lo << " " << hi;
    EXPECT_NEAR(t.front(), a, a * 1e-9) << lo << " " << hi;
    EXPECT_NEAR(t.back(), b, b * 1e-9) << lo << " " << hi;
  }
  EXPECT_EQ(log_range(6.376e6, 15.06e6), (std::pair<double, double>{5e6, 2e7}));
  EXPECT_EQ(log_range(4.717e6, 9.229e6), (std::pair<double, double>{4e6, 1e7}));
  EXPECT_EQ(log_ticks(4e6, 1e7), (std::vector<double>{4e6, 6e6, 8e6, 1e7}));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-8, 12), spread(0, 6);
  for (int trial = 0; trial < 3000; ++trial) {
    const double lo = std::pow(10.0, exponent(rng)), hi = lo * std::pow(10.0, spread(rng) * spread(rng) / 6);
    const auto [a, b] = log_range(lo, hi);
    ASSERT_LE(a, lo * (1 + 1e-12));
    ASSERT_GE(b, hi * (1 - 1e-12));
    ASSERT_GT(a, lo / 10) << lo << " " << hi;  // less than a decade wider on either side
    ASSERT_LT(b, hi * 10) << lo << " " << hi;
    const std::vector<double> t = log_ticks(a, b);
    ASSERT_GE(t.size(), 2u) << lo << " " << hi;
    ASSERT_LE(t.size(), 9u) << lo << " " << hi;
    ASSERT_NEAR(t.front(), a, a * 1e-9) << lo << " " << hi;
    ASSERT_NEAR(t.back(), b, b * 1e-9) << lo << " " << hi;
  }
}

TEST(SvgTicks, LabelsHaveNoSpuriousDigits) {
  EXPECT_EQ(tick_label(0.7, 0.1), "0.7");
  EXPECT_EQ(tick_label(0.1 * 7, 0.1), "0.7");
  EXPECT_EQ(tick_label(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(tick_label(70, 10), "70");
  EXPECT_EQ(tick_label(2.5, 0.5), "2.5");
  EXPECT_EQ(tick_label(3, 0.5), "3");
  EXPECT_EQ(tick_label(1e6, 2e5, true), "1M");
  EXPECT_EQ(tick_label(2e5, 2e5, true), "200k");
  EXPECT_EQ(tick_label(1.2e6, 2e5, true), "1.2M");
  EXPECT_EQ(tick_label(5e9, 5e9, true), "5G");
  EXPECT_EQ(tick_label(0, 0.2), "0");
  EXPECT_EQ(tick_label(-1e-17, 0.2), "0");
  EXPECT_EQ(tick_label(-0.4, 0.2), "-0.4");
  EXPECT_EQ(tick_label(0.05, 0.05), "0.05");
  EXPECT_EQ(tick_label(74, 2), "74");
  EXPECT_EQ(tick_label(4000000, 2000000), "4000000");
  EXPECT_EQ(tick_label(12.5, 2.5), "12.5");
  EXPECT_EQ(tick_label(2e-6, 1e-6), "2e-6");
  EXPECT_EQ(tick_label(2.5e-7, 5e-8), "2.5e-7");
  EXPECT_EQ(tick_label(0, 1e-6), "0");
  EXPECT_EQ(tick_label(0.0002, 0.0001), "0.0002");
  EXPECT_EQ(tick_label(3e12, 1e12), "3e12");
  for (double t : nice_ticks(0.343, 0.9034)) {
    const std::string l = tick_label(t, 0.1);
    EXPECT_LE(l.size(), 3u) << l;
  }
}

TEST(SvgTicks, EscapeXml) {
  EXPECT_EQ(escape_xml("a<b & 'c' \"d\">"), "a&lt;b &amp; &apos;c&apos; &quot;d&quot;&gt;");
  EXPECT_EQ(viridis(0), "#440154");
  EXPECT_EQ(viridis(1), "#fde725");
  EXPECT_EQ(viridis(2), "#fde725");
}

TEST(SvgChart, LineChartIsWellFormedWithRoundTicks) {
  LineChart chart;
  chart.title = "loss <by> step & more";
  chart.x_title = "step";
  chart.y_title = "loss 'lower is better'";
  Series a = series("train & dev", "#1f77b4", {0, 1, 2, 3, 4}, {74.32, 70.31, 68, 67.2, 66.31});
  a.y_low = {73, 69, 67, 66.5, 66}, a.y_high = {75, 71, 69, 68, 67};
  Series b = series("", "#d62728", {0, 4}, {70, 70}, true, false);
  b.dash = "4 3";
  Series c = series("best", "#2ca02c", {2}, {68}, false, true);
  c.marker = "star";
  c.labels = {"best <2>"};
  chart.series = {a, b, c};
  const std::string svg = line_chart_svg(chart);
  const auto xml = check_xml(svg);
  ASSERT_TRUE(xml.ok) << xml.error << "\n" << svg;
  EXPECT_EQ(xml.root, "svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<circle"), 5u);  // the markers of `a`; the legend draws no circles
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_NE(svg.find("loss &lt;by&gt; step &amp; more"), std::string::npos);
  EXPECT_NE(svg.find(">train &amp; dev</text>"), std::string::npos);
  // The y tick labels are round: 66 .. 76 by 2 (or a coarser round step), no 74.32.
  const std::regex label(">(-?[0-9.]+)</text>");
  std::vector<std::string> labels;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it)
    labels.push_back((*it)[1]);
  for (const std::string& l : labels) {
    EXPECT_EQ(l.find("74.32"), std::string::npos);
    EXPECT_LE(l.size(), 3u) << l;
  }
  EXPECT_NE(std::find(labels.begin(), labels.end(), "70"), labels.end());
  // Same inputs, same bytes.
  EXPECT_EQ(line_chart_svg(chart), svg);
}

TEST(SvgChart, CategoriesLogAxesColourBarAndEmptyCharts) {
  LineChart cats;
  cats.x_categories = {"self_attention sdp", "self_attention wma", "linear_mixing dft", "dynamic_conv k9", "ff 1024"};
  cats.series = {series("probe", "#1f77b4", {0, 1, 2, 3, 4}, {0.1, 0.5, 0.2, 0.9, 0.4})};
  cats.width = 360;
  const std::string c = line_chart_svg(cats);
  ASSERT_TRUE(check_xml(c).ok) << check_xml(c).error;
  EXPECT_NE(c.find("rotate(-40)"), std::string::npos) << "long categories are rotated";
  EXPECT_NE(c.find(">dynamic_conv k9</text>"), std::string::npos);

  LineChart logs;
  logs.log_x = true;
  logs.x_si = true;
  Series points = series("trials", "#1f77b4", {6.376e6, 1.07e7, 1.5e7, -1, 0}, {0.77, 0.86, 0.86, 0.5, 0.5}, false);
  points.colour_values = {0.77, 0.86, 0.86, 0.5, 0.5};
  logs.series = {points};
  logs.colour_bar_title = "score";
  const std::string l = line_chart_svg(logs);
  const auto lx = check_xml(l);
  ASSERT_TRUE(lx.ok) << lx.error;
  EXPECT_EQ(lx.elements.at("circle"), 3) << "non-positive x are left off a log axis";
  EXPECT_NE(l.find(">5M</text>"), std::string::npos) << l;
  EXPECT_NE(l.find(">10M</text>"), std::string::npos);
  EXPECT_NE(l.find(">15M</text>"), std::string::npos);
  EXPECT_NE(l.find("linearGradient"), std::string::npos);

  LineChart none;
  none.title = "nothing";
  const std::string n = line_chart_svg(none);
  ASSERT_TRUE(check_xml(n).ok) << check_xml(n).error;
  EXPECT_NE(n.find("no data"), std::string::npos);

  const std::string both = charts_svg({cats, logs, none}, "three & more");
  const auto bx = check_xml(both);
  ASSERT_TRUE(bx.ok) << bx.error;
  EXPECT_EQ(bx.elements.at("circle"), 5 + 3);
}

TEST(SvgChart, XmlCheckerRejectsBrokenDocuments) {
  EXPECT_TRUE(check_xml("<svg a='1'><g/><text>a &amp; b</text></svg>").ok);
  EXPECT_FALSE(check_xml("<svg><g></svg>").ok);
  EXPECT_FALSE(check_xml("<svg><text>a & b</text></svg>").ok);
  EXPECT_FALSE(check_xml("<svg a='1' a='2'/>").ok);
  EXPECT_FALSE(check_xml("<svg a=1/>").ok);
  EXPECT_FALSE(check_xml("<svg/><svg/>").ok);
  EXPECT_FALSE(check_xml("<svg t='<'/>").ok);
}
