// Surrogate quality on a tabular benchmark: how well BOSHNAS's surrogate ranks the architectures
// it has not seen, after n results, against a ridge regression on the same inputs and targets
// (a baseline of our own, measured in the same run).
//
//   surrogate_quality_bench LIB.json TABLE.json [--metric glue] [--inputs embedding+dict]
//                           [--points 10,20,30,50] [--repeats 10] [--batch-size 32] [--min-epochs 10]
//                           [--patience 7] [--ridge 1] [--mean-from npn|teacher]   (--help: defaults)
// Per repeat (seeded): results arrive one at a time in a random order and the surrogate is refitted
// after each, warm-started, as the policy does (rank targets). At each n in --points, over the
// library entries not yet seen: Spearman correlation of the predicted mean with the score, and the
// score percentile of the entry with the best predicted mean (what a greedy step would train).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>

#include "bench/bench_cli.h"
#include "design_space/embedding.h"
#include "design_space/library.h"
#include "launch/cli/enum_option.h"
#include "nas/boshnas.h"
#include "nas/surrogate.h"
#include "nas/table.h"

using namespace flexnas;
using namespace flexnas::nas;

namespace {

struct Options {
  std::string library, table;  // LIB.json, TABLE.json (required)
  std::string metric = "glue";
  SurrogateInputs inputs = BoshnasOptions{}.inputs;
  std::string points = "10,20,30,50";  // numbers of results at which to score, comma-separated
  int64_t repeats = 10;
  double ridge = 1.0;                  // the baseline's lambda
  SurrogateOptions surrogate;          // --batch-size, --min-epochs, --patience, --mean-from
};

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

// Ridge regression with an intercept on x [n, d] → predictions for all rows of `all` [N, d].
at::Tensor ridge_predict(const at::Tensor& x, const at::Tensor& y, const at::Tensor& all, double lambda) {
  auto with_one = [](const at::Tensor& t) { return at::cat({t, at::ones({t.size(0), 1}, t.options())}, 1); };
  const at::Tensor a = with_one(x).to(at::kDouble), b = y.to(at::kDouble).unsqueeze(1);
  at::Tensor reg = lambda * at::eye(a.size(1), at::kDouble);
  reg.index_put_({a.size(1) - 1, a.size(1) - 1}, 0.0);  // the intercept is not shrunk
  const at::Tensor w = at::linalg_solve(a.t().mm(a) + reg, a.t().mm(b));
  return with_one(all).to(at::kDouble).mm(w).squeeze(1).to(at::kFloat);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"surrogate_quality_bench: BOSHNAS's surrogate ranking unseen architectures vs a ridge regression"};
  bench::show_defaults(app);
  app.add_option("library", o.library, "library JSON")->required();
  app.add_option("table", o.table, "benchmark table JSON (e.g. NAS-Bench-BERT's BERT_benchmark.json)")->required();
  app.add_option("--metric", o.metric, "the table's score to rank by");
  launch::add_enum_option(&app, "--inputs", o.inputs, surrogate_inputs_names(), "surrogate inputs");
  app.add_option("--points", o.points, "numbers of results at which to score, comma-separated");
  app.add_option("--repeats", o.repeats, "seeded repeats (random result orders)")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.surrogate.batch_size, "surrogate training batch")->check(CLI::PositiveNumber);
  app.add_option("--min-epochs", o.surrogate.min_epochs, "surrogate epochs before early stopping")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--patience", o.surrogate.patience, "surrogate epochs without a better validation loss")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ridge", o.ridge, "ridge regression's lambda")->check(CLI::NonNegativeNumber);
  std::string mean_from = o.surrogate.mean_from_npn ? "npn" : "teacher";
  app.add_option("--mean-from", mean_from, "the surrogate's mean: npn or teacher")
      ->check(CLI::IsMember({"npn", "teacher"}));
  if (const int code = bench::parse_flags(app, argc, argv); code >= 0) return code;
  const std::string& metric = o.metric;
  const SurrogateInputs inputs = o.inputs;
  std::vector<int64_t> points;
  try {
    points = parse_list(o.points);
  } catch (const std::exception&) {
    std::cerr << "--points: '" << o.points << "' is not a comma-separated list of counts\n";
    return 2;
  }
  const int64_t repeats = o.repeats;
  const double ridge = o.ridge;
  SurrogateOptions so = o.surrogate;
  so.mean_from_npn = mean_from == "npn";
  torch::set_num_threads(1);
  const Library library = load_library(o.library);
  const auto scores = align_scores(load_benchmark_table(o.table, metric), library);
  std::vector<int64_t> scored;
  for (int64_t i = 0; i < int64_t(scores.size()); ++i)
    if (scores[size_t(i)]) scored.push_back(i);
  const at::Tensor all = surrogate_inputs(library, inputs).index_select(0, at::tensor(scored, at::kLong));
  std::vector<double> truth;
  for (int64_t i : scored) truth.push_back(*scores[size_t(i)]);
  so.input_dim = all.size(1);
  std::cout << "library " << o.library << ": " << scored.size() << " scored architectures, inputs " << enum_name(surrogate_inputs_names(), inputs) << " (dim "
            << all.size(1) << "), batch " << so.batch_size << ", min epochs " << so.min_epochs << ", patience "
            << so.patience << ", mean from " << (so.mean_from_npn ? "npn" : "teacher") << ", ridge lambda " << ridge << ", " << repeats << " repeats\n";
  const int64_t last = points.empty() ? 0 : *std::max_element(points.begin(), points.end());
  if (points.empty() || *std::min_element(points.begin(), points.end()) < 1 || last >= int64_t(scored.size())) {
    std::cerr << "--points: every value must lie in 1.." << scored.size() - 1 << " (the scored architectures, one left unseen)\n";
    return 2;
  }
  // Per n: sums over repeats of (spearman, percentile of the greedy pick) for surrogate and ridge.
  std::vector<double> s_rho(points.size()), s_pick(points.size()), r_rho(points.size()), r_pick(points.size());
  for (int64_t rep = 0; rep < repeats; ++rep) {
    std::vector<int64_t> order(scored.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(uint64_t(rep)));
    so.seed = uint64_t(rep);
    Surrogate surrogate(so);
    for (int64_t n = 1; n <= last; ++n) {
      std::vector<int64_t> seen(order.begin(), order.begin() + n);
      std::vector<double> values;
      for (int64_t i : seen) values.push_back(truth[size_t(i)]);
      const at::Tensor x = all.index_select(0, at::tensor(seen, at::kLong));
      const at::Tensor y = at::tensor(normalised_targets(values, SurrogateTargets::kRank), at::kFloat);
      surrogate.fit(x, y, uint64_t(rep * 1000 + n));
      const auto at_point = std::find(points.begin(), points.end(), n);
      if (at_point == points.end()) continue;
      const size_t p = size_t(at_point - points.begin());
      std::vector<bool> is_seen(scored.size(), false);
      for (int64_t i : seen) is_seen[size_t(i)] = true;
      auto score_of = [&](const at::Tensor& loss_tensor, double& rho, double& pick) {  // lower = better
        const at::Tensor loss = loss_tensor.to(at::kDouble).contiguous();
        const double* l_of = loss.data_ptr<double>();
        std::vector<double> predicted, actual;
        double best_loss = INFINITY, best_truth = 0;
        for (size_t i = 0; i < scored.size(); ++i) {
          if (is_seen[i]) continue;
          const double l = l_of[i];
          predicted.push_back(-l);
          actual.push_back(truth[i]);
          if (l < best_loss) best_loss = l, best_truth = truth[i];
        }
        rho += spearman_correlation(predicted, actual);
        pick += double(std::count_if(actual.begin(), actual.end(), [&](double v) { return v < best_truth; })) /
                double(actual.size());
      };
      score_of(surrogate.predict(all).mean, s_rho[p], s_pick[p]);
      score_of(ridge_predict(x, y, all, ridge), r_rho[p], r_pick[p]);
    }
  }
  std::cout << std::fixed << std::setprecision(3);
  for (size_t p = 0; p < points.size(); ++p) {
    const double k = double(repeats);
    std::cout << "n " << points[p] << ": surrogate Spearman " << s_rho[p] / k << ", greedy pick at percentile "
              << 100 * s_pick[p] / k << " | ridge Spearman " << r_rho[p] / k << ", pick at percentile "
              << 100 * r_pick[p] / k << " | Spearman ratio surrogate/ridge " << s_rho[p] / r_rho[p] << "\n";
  }
}
