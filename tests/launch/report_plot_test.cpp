// launch/report/report_plot: the campaign report's pictures (trials.svg, pareto.svg, embedding.svg) on small
// synthetic trials and libraries: well-formed XML, one mark per point, the best marked, round ticks.
#include "launch/report/report_plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "design_space/architecture.h"
#include "design_space/config_node.h"
#include "launch/campaign/campaign_store.h"
#include "launch/campaign/leaderboard.h"
#include "tests/launch/xml_check.h"

using namespace flexnas::launch;
using flexnas::testing_xml::check_xml;

namespace {

TrialRow trial(int64_t id, double value, int64_t parameters, double seconds, int64_t index = -1) {
  TrialRow t;
  t.id = id;
  t.index = index;
  t.kind = "random";
  t.status = trial_status::kCompleted;
  t.value = value;
  t.score = value;
  t.parameters = parameters;
  t.seconds = seconds;
  return t;
}

/// The text of every <text> element that is a plain number (a tick label).
std::vector<std::string> number_labels(const std::string& svg) {
  static const std::regex label(">(-?[0-9][0-9.]*[kMGT]?)</text>");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

/// With FLEXNAS_TEST_PICTURES=DIR, the pictures are also written there (to look at them).
void keep(const std::string& name, const std::string& svg) {
  if (const char* dir = std::getenv("FLEXNAS_TEST_PICTURES")) std::ofstream(std::string(dir) + "/" + name) << svg;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

/// 45 trials: values over [66.31, 74.32], parameters over [4.717M, 9.229M] (the old report's ranges).
std::vector<TrialRow> report_trials() {
  std::vector<TrialRow> trials;
  for (int i = 0; i < 45; ++i) {
    const double u = std::fmod(i * 0.618034, 1.0);
    trials.push_back(trial(i, 66.31 + (74.32 - 66.31) * u, int64_t(4.717e6 + (9.229e6 - 4.717e6) * std::fmod(i * 0.4142, 1.0)),
                           60 + 120 * std::fmod(i * 0.7321, 1.0), i));
  }
  trials[0].value = trials[0].score = 66.31;
  trials[1].value = trials[1].score = 74.32;
  trials[2].parameters = 4717000;
  trials[3].parameters = 9229000;
  TrialRow failed;
  failed.id = 45;
  failed.status = trial_status::kFailed;
  trials.push_back(failed);
  return trials;
}

}  // namespace

TEST(ReportPictures, TrialsSvgHasRoundTicks) {
  const std::vector<TrialRow> trials = report_trials();
  const std::string svg = trials_svg(trials, "glue", true, 1);
  keep("trials.svg", svg);
  const auto xml = check_xml(svg);
  ASSERT_TRUE(xml.ok) << xml.error;
  EXPECT_EQ(xml.elements.at("circle"), 2 * 45);
  EXPECT_EQ(xml.elements.at("polyline"), 2);
  EXPECT_NE(svg.find("glue by trial (45 done, 1 failed)"), std::string::npos);
  const std::vector<std::string> labels = number_labels(svg);
  for (const std::string& l : labels) {
    EXPECT_LE(l.size(), 3u) << "not a round label: " << l;
    EXPECT_EQ(l.find('.'), std::string::npos) << l;
  }
  for (const char* l : {"0", "20", "40", "70", "4M", "6M", "10M"}) EXPECT_TRUE(has(labels, l)) << l;
  EXPECT_EQ(trials_svg(trials, "glue", true, 1), svg) << "deterministic";
  // Trials of an earlier level are grey and get their own legend entry.
  std::vector<TrialRow> levels = trials;
  levels[4].kind = parent_trial_kind(1);
  const std::string two = trials_svg(levels, "glue", true, 2);
  keep("trials-levels.svg", two);
  ASSERT_TRUE(check_xml(two).ok) << check_xml(two).error;
  EXPECT_NE(two.find(">earlier levels</text>"), std::string::npos);
  EXPECT_NE(two.find("#999999"), std::string::npos);
}

TEST(ReportPictures, ParetoSvgHighlightsTheFront) {
  // (parameters, value, seconds): the front by size is trials 0, 1, 3; by time 0, 3 (3 is fastest
  // among the good ones).
  std::vector<TrialRow> trials = {trial(0, 0.5, 1000000, 10), trial(1, 0.7, 2000000, 50), trial(2, 0.6, 3000000, 40),
                                  trial(3, 0.9, 4000000, 20), trial(4, 0.8, 5000000, 30), trial(5, 0.95, 0, 0)};
  const std::string svg = pareto_svg(trials, "score", true);
  keep("pareto.svg", svg);
  const auto xml = check_xml(svg);
  ASSERT_TRUE(xml.ok) << xml.error;
  EXPECT_EQ(xml.elements.at("circle"), 5 + 5) << "a trial without a size or time is left off that panel";
  EXPECT_EQ(xml.elements.at("polyline"), 2) << "one step line per panel";
  EXPECT_NE(svg.find("against size (3 of 5 on the front)"), std::string::npos);
  EXPECT_NE(svg.find("against training time (2 of 5 on the front)"), std::string::npos);
  EXPECT_NE(svg.find("higher is better"), std::string::npos);
  EXPECT_NE(svg.find("fewer is better"), std::string::npos);
  EXPECT_NE(svg.find("less is better"), std::string::npos);
  EXPECT_NE(svg.find("(no latency measured: wall time instead)"), std::string::npos);
  // The front's points carry their trial numbers; the dominated ones are grey.
  EXPECT_NE(svg.find(">3</text>"), std::string::npos);
  EXPECT_NE(svg.find("#b5b5b5"), std::string::npos);
  for (const std::string& l : number_labels(svg)) EXPECT_LE(l.size(), 4u) << l;
  // Minimised objectives: the front runs the other way.
  const std::string low = pareto_svg(trials, "loss", false);
  ASSERT_TRUE(check_xml(low).ok);
  EXPECT_NE(low.find("against size (1 of 5 on the front)"), std::string::npos);
  EXPECT_NE(pareto_svg({}, "score", true).find("no completed trials yet"), std::string::npos);

  // A campaign that measures latency (objective.profile): the second panel is the measured latency.
  // Latencies (ms) 4, 1, 2, 3 for trials 0, 1, 3, 4; trial 2 was not measured and a failed
  // measurement counts as none: the front by latency is trials 1 (0.7 at 1 ms), 3 (0.9 at 2 ms).
  std::map<std::string, ProfileRow> profiles;
  const double ms[] = {4, 1, -1, 2, 3, 0};
  for (size_t i = 0; i < trials.size(); ++i) {
    trials[i].hash = "h" + std::to_string(i);
    if (ms[i] < 0) continue;
    ProfileRow row;
    row.hash = trials[i].hash;
    row.latency_ms = ms[i];
    if (i == 5) row.error = "out of memory";
    profiles[row.hash] = row;
  }
  const std::string lat = pareto_svg(trials, "score", true, &profiles);
  keep("pareto-latency.svg", lat);
  ASSERT_TRUE(check_xml(lat).ok) << check_xml(lat).error;
  EXPECT_NE(lat.find("against latency (2 of 4 on the front)"), std::string::npos);
  EXPECT_NE(lat.find("latency per batch, ms (measured;"), std::string::npos);
  EXPECT_EQ(lat.find("no latency measured"), std::string::npos);
  EXPECT_EQ(check_xml(lat).elements.at("circle"), 5 + 4);
  const std::map<std::string, ProfileRow> none;
  EXPECT_EQ(pareto_svg(trials, "score", true, nullptr), pareto_svg(trials, "score", true, &none))
      << "no measurement: the wall-time panel";
}

// The leaderboard's model-dict summary: equal consecutive layers merged, Funnel pooling and block
// parameter sharing visible.
TEST(Leaderboard, SummaryMergesLayersAndShowsPoolingAndSharing) {
  auto parse = [](const std::string& json) { return flexnas::architecture_from_config(flexnas::ConfigNode::load_string(json, "arch")); };
  EXPECT_EQ(summarize_architecture(parse(
                R"({"l":3,"h":[128,128,256],"n":[2,2,4],"o":["sa","sa","l"],"f":[[512],[512],[1024,1024]],"p":["wma","wma","dct"]})")),
            "L3 | h128 sa-wma n2 f512 x2 | h256 l-dct n4 f1024,1024");
  // Funnel's B6-3x2-style sharing: layers 1 and 3 run with layers 0 and 2; pooling before layer 2.
  EXPECT_EQ(summarize_architecture(parse(
                R"({"l":4,"h":[64,64,64,64],"n":[2,2,2,2],"o":["sa","sa","sa","sa"],"f":[[128],[128],[128],[128]],)"
                R"("p":["sdp","sdp","sdp","sdp"],"share":[0,0,2,2],"pool":{"stride":[1,1,2,1]}})")),
            "L4 | h64 sa-sdp n2 f128 x2 (1 shared) | pool2 h64 sa-sdp n2 f128 | h64 sa-sdp n2 f128 (1 shared)");
}

TEST(ReportPictures, SymmetricEigenAndPca) {
  std::vector<double> values;
  std::vector<std::vector<double>> vectors;
  symmetric_eigen({2, 1, 0, 1, 2, 0, 0, 0, 0.5}, 3, 2, values, vectors);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_NEAR(values[0], 3, 1e-12);
  EXPECT_NEAR(values[1], 1, 1e-12);
  EXPECT_NEAR(vectors[0][0], std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(vectors[0][1], std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(vectors[1][0], std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(vectors[1][1], -std::sqrt(0.5), 1e-12);
  // Points along (1, 2, 0) with a little spread along z: PC1 is that direction, ordered as t.
  std::vector<std::vector<float>> emb;
  for (int i = 0; i < 30; ++i) {
    const float t = float(i) - 15, z = float((i * 7) % 5) * 0.1f;
    emb.push_back({t, 2 * t, z});
  }
  emb.push_back({});  // an architecture without an embedding
  const LibraryMap map = library_map(emb);
  EXPECT_EQ(map.dim, 3);
  EXPECT_EQ(map.count, 30);
  EXPECT_FALSE(map.has[30]);
  EXPECT_GT(map.explained[0], 0.99);
  for (int i = 1; i < 30; ++i) EXPECT_GT(map.xy[size_t(i)][0], map.xy[size_t(i - 1)][0]);
  EXPECT_EQ(library_map({}).count, 0);
}

TEST(ReportPictures, EmbeddingSvgColoursTrainedAndMarksTheBest) {
  std::vector<std::vector<float>> emb;
  for (int i = 0; i < 40; ++i) emb.push_back({float(i % 8), float(i / 8) * 1.5f, float((i * 3) % 7) * 0.2f, 1.0f});
  emb.push_back({});
  emb.push_back({});
  const LibraryMap map = library_map(emb);
  std::vector<TrialRow> trials = {trial(0, 0.61, 1, 1, 3), trial(1, 0.83, 1, 1, 17), trial(2, 0.72, 1, 1, 25),
                                  trial(3, 0.99, 1, 1, 40) /* no embedding: left off */, trial(4, 0.55, 1, 1, 39)};
  const std::string svg = embedding_svg(trials, map, "score", true);
  keep("embedding.svg", svg);
  const auto xml = check_xml(svg);
  ASSERT_TRUE(xml.ok) << xml.error;
  EXPECT_EQ(xml.elements.at("circle"), 40 + 4);
  EXPECT_EQ(xml.elements.at("polygon"), 2) << "the best's star, and its legend entry";
  EXPECT_NE(svg.find("best: trial 1, 0.83"), std::string::npos);
  EXPECT_NE(svg.find(">best</text>"), std::string::npos);
  EXPECT_NE(svg.find("library (40 architectures)"), std::string::npos);
  EXPECT_NE(svg.find("trained (4)"), std::string::npos);
  EXPECT_NE(svg.find("linearGradient"), std::string::npos) << "a colour bar";
  EXPECT_NE(svg.find("#fde725"), std::string::npos) << "the best value at the top of the scale";
  for (const std::string& l : number_labels(svg)) EXPECT_LE(l.size(), 4u) << l;
  EXPECT_EQ(embedding_svg(trials, library_map(emb), "score", true), svg) << "deterministic";
  // Minimised (the store's score is then -value): the lowest value is the best.
  for (TrialRow& t : trials) t.score = -*t.value;
  const std::string low = embedding_svg(trials, map, "loss", false);
  EXPECT_NE(low.find("best: trial 4, 0.55"), std::string::npos) << low.substr(0, 400);
  // No embeddings at all: a picture that says so.
  const std::string none = embedding_svg(trials, library_map({{}, {}}), "score", true);
  ASSERT_TRUE(check_xml(none).ok);
  EXPECT_NE(none.find("has no embeddings"), std::string::npos);
}
