// flexnas probe: layer-wise softmax-regression probes (seed 002) of one checkpoint, a checkpoint
// and a second one to compare (e.g. pretrained vs fine-tuned), or every checkpoint under an
// experiment folder (e.g. fine-tuning epochs and learning rates). Writes probes.json and
// probes.svg (score per layer, one line per checkpoint) and prints the table.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "datasets/finetune_data.h"
#include "datasets/tasks.h"
#include "datasets/tokenizer.h"
#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/evaluators/task_checkpoint.h"
#include "launch/report/probe_report.h"
#include "models/checkpoint.h"
#include "models/probe.h"
#include "models/trainer.h"

namespace flexnas::launch {
namespace {
namespace fs = std::filesystem;

struct ProbeCommandOptions {
  std::string checkpoint;         // one checkpoint directory
  std::string compare;            // a second one, drawn beside the first
  std::string experiment;         // or: every checkpoint under this folder
  std::string task;               // registered task
  std::string layers = "all";     // "all" or a list of indices: 0 = embeddings, 1..L = layers
  models::ProbePooling pool = models::ProbePooling::kMean;  // sequence tasks: mean | cls
  std::string data_dir = datasets::TaskLoadOptions{}.data_dir;  // task data
  std::string cache_dir;          // token caches (default <data-dir>/cache)
  std::string tokenizer;          // must be the checkpoints' (default: the recorded file)
  std::string out;                // folder of probes.json / probes.svg
  int64_t max_len = 0;            // tokens per example; 0 = the task's default
  int64_t batch_size = 64;        // examples per forward pass
  int64_t bootstrap = 1000;       // resamples of the intervals
  int64_t max_train_examples = 10000;  // probes train on at most this many examples (0 = all)
  int64_t threads = 0;            // torch threads (0 = every core)
  models::ProbeOptions probe;     // penalties, L-BFGS iterations, held-out share, seed
  ComputeFlags compute;           // --device, --precision
};

/// "epoch-2" < "epoch-10": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      const auto strip = [](const std::string& s) { return s.substr(std::min(s.find_first_not_of('0'), s.size())); };
      const std::string sa = strip(na), sb = strip(nb);
      if (sa.size() != sb.size()) return sa.size() < sb.size();
      if (sa != sb) return sa < sb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

bool is_checkpoint(const fs::path& dir) {
  return fs::is_regular_file(dir / models::kConfigFile) && fs::is_regular_file(dir / models::kWeightsFile);
}

/// Every checkpoint under `root` (itself included), in natural order of their relative paths.
std::vector<std::pair<std::string, std::string>> experiment_checkpoints(const std::string& root) {
  if (!fs::is_directory(root)) flag_error("--experiment", "'" + root + "': no such directory");
  std::vector<std::pair<std::string, std::string>> found;  // name, path
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it)
    if (it->is_directory() && is_checkpoint(it->path()))
      found.push_back({fs::relative(it->path(), root).generic_string(), it->path().string()});
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
  // The folder itself first (a fine-tuning run's best model above its epochs/), under its own name.
  if (is_checkpoint(root)) found.insert(found.begin(), {fs::absolute(root).lexically_normal().filename().string(), root});
  if (found.empty())
    flag_error("--experiment", "'" + root + "' holds no checkpoint (a folder with " +
               models::kConfigFile + " and " + models::kWeightsFile + ") at any depth");
  return found;
}

/// --layers: "all" or indices "0,2,4" (0 = embeddings, l = layer l); validated against the
/// shallowest model. Returns sorted unique indices.
std::vector<int64_t> parse_layers(const std::string& text, int64_t num_layers, const std::string& shallowest) {
  std::vector<int64_t> out;
  if (text == "all") {
    for (int64_t i = 0; i <= num_layers; ++i) out.push_back(i);
    return out;
  }
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      flag_error("--layers", "'" + item + "' is not a layer index; allowed: all, or indices 0.." +
                 std::to_string(num_layers) + " separated by commas (0 = embeddings)");
    if (v < 0 || v > num_layers)
      flag_error("--layers", std::to_string(v) + " is out of range for '" + shallowest + "' (" +
                 std::to_string(num_layers) + " layers); allowed: 0.." + std::to_string(num_layers) +
                 " (0 = embeddings, l = layer l)");
    out.push_back(v);
  }
  if (out.empty()) flag_error("--layers", "empty; allowed: all, or indices such as 0,1,2");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Target {
  std::string name, path;
  models::CheckpointConfig config;
};

/// A checkpoint fits a task when its head is the language-model head (any task) or the task's own
/// head (a fine-tuned model of that task kind and label count).
void check_fits(const Target& t, const datasets::TaskInfo& info, const std::string& flag) {
  const models::ModelOptions wanted = models::task_model_options(t.config.options, info);
  if (t.config.options.head == models::HeadType::kMlm) return;
  if (t.config.options.head != wanted.head || t.config.options.num_labels != wanted.num_labels)
    flag_error(flag, "'" + t.path + "' has a " + models::head_type_name(t.config.options.head) +
               " head with " + std::to_string(t.config.options.num_labels) + " labels, fine-tuned for another task; " +
               info.name + " needs a " + models::head_type_name(wanted.head) + " head with " +
               std::to_string(wanted.num_labels) + " labels (or a pretrained checkpoint with the mlm head)");
}

CheckpointResult probe_checkpoint(const Target& t, const ProbeCommandOptions& o, const datasets::TaskData& data,
                                  const std::vector<int64_t>& layers, const Compute& compute,
                                  models::ProbePooling pooling) {
  const datasets::TaskInfo& info = data.info;
  datasets::FinetuneOptions fo;
  fo.max_length = o.max_len > 0 ? o.max_len : info.max_length;
  fo.batch_size = o.batch_size;
  const datasets::Tokenizer tokenizer =
      checkpoint_task_tokenizer(t.path, t.config, o.tokenizer, o.cache_dir, o.data_dir, fo.max_length);
  models::FlexModel model = models::load_checkpoint(t.path, compute.device);
  const auto score = [&info](const datasets::Predictions& p) {
    return datasets::task_score(info, datasets::compute_metrics(info, p));
  };

  // Features: every split once, all requested layers from the same forward passes.
  std::map<std::string, models::LayerFeatures> features;
  std::vector<std::string> eval_splits;
  CheckpointResult result{t.name, t.path, {}, nlohmann::ordered_json::object(), {}};
  for (const std::string& split : info.splits) {
    if (split != "train") eval_splits.push_back(split);
    const datasets::TaskDataset ds = models::task_dataset(data, split, tokenizer, fo);
    const models::LayerFeatures f = models::extract_features(*model, models::eval_split(split, ds), info.kind, layers,
                                                             pooling, compute.precision);
    std::cout << "  " << t.name << ": features of " << split << ": " << f.labels.size(0) << " items from "
              << f.num_examples << " examples, " << f.tokens << " tokens in " << format_fixed(f.seconds, 1) << " s ("
              << int64_t(double(f.tokens) / std::max(f.seconds, 1e-9)) << " tokens/s)\n"
              << std::flush;
    result.extraction[split] = {{"examples", f.num_examples},
                                {"items", f.labels.size(0)},
                                {"tokens", f.tokens},
                                {"seconds", f.seconds},
                                {"tokens_per_second", double(f.tokens) / std::max(f.seconds, 1e-9)}};
    if (f.labels.size(0) == 0)
      flag_error("--task", "split '" + split + "' of " + info.name + " has no labelled items to probe");
    features.emplace(split, f);
  }
  const models::LayerFeatures& train = features.at("train");
  const int64_t num_labels = info.num_labels;  // 1 = regression (a linear regression probe)
  for (size_t j = 0; j < layers.size(); ++j) {
    const auto start = std::chrono::steady_clock::now();
    LayerResult lr;
    lr.index = layers[j];
    lr.op = models::layer_op_label(t.config.arch, layers[j]);
    lr.width = train.features[j].size(1);
    const models::Probe probe =
        models::train_probe(train.features[j], train.labels, train.example, num_labels, score, o.probe);
    lr.l2 = probe.l2;
    lr.held_out_score = probe.held_out_score;
    for (const std::string& split : eval_splits) {
      const models::LayerFeatures& f = features.at(split);
      datasets::Predictions p = models::probe_predictions(probe, f.features[j], f.labels);
      SplitScore s;
      s.split = split;
      s.metrics = datasets::compute_metrics(info, p);
      s.score = datasets::task_score(info, s.metrics);
      s.interval = models::bootstrap_interval(p, f.example, score, o.bootstrap, o.probe.seed);
      lr.splits.push_back(s);
      lr.predictions.emplace(split, std::move(p));
    }
    lr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "  " << t.name << ": layer " << lr.index << " (" << lr.op << ", " << lr.width << " wide):";
    for (const auto& s : lr.splits)
      std::cout << " " << s.split << " " << format_fixed(s.score) << " [" << format_fixed(s.interval.low) << ", " << format_fixed(s.interval.high)
                << "]";
    std::cout << " (l2 " << lr.l2 << ", " << format_fixed(lr.seconds, 1) << " s)\n" << std::flush;
    result.layers.push_back(std::move(lr));
  }

  // Layers are chosen on the first evaluation split (dev) and compared on the last (test): the
  // choice and the comparison never see the same examples when the task has both.
  const std::string select_split = info.eval_splits.front();
  const std::string report_split = eval_splits.back();
  auto score_on = [](const LayerResult& l, const std::string& split) {
    for (const auto& s : l.splits)
      if (s.split == split) return s.score;
    return 0.0;
  };
  size_t best = 0;
  for (size_t j = 1; j < result.layers.size(); ++j)
    if (score_on(result.layers[j], select_split) > score_on(result.layers[best], select_split)) best = j;
  result.report_split = report_split;
  result.report_example = features.at(report_split).example;
  result.comparison = {{"best_layer", result.layers[best].index}, {"chosen_on", select_split}};
  // Does any layer add to the embeddings? The best layer above them (on dev) against them (on test).
  size_t above = layers.front() == 0 ? 1 : 0;
  for (size_t j = above + 1; j < result.layers.size(); ++j)
    if (score_on(result.layers[j], select_split) > score_on(result.layers[above], select_split)) above = j;
  if (layers.front() == 0 && layers.size() > 1) {
    best = above;
    result.comparison["best_layer_above_embeddings"] = result.layers[best].index;
    const auto& p_best = result.layers[best].predictions.at(report_split);
    const auto& p_emb = result.layers.front().predictions.at(report_split);
    const models::Interval d = models::bootstrap_difference(p_best, p_emb, features.at(report_split).example, score,
                                                            o.bootstrap, o.probe.seed);
    const double diff = score_on(result.layers[best], report_split) - score_on(result.layers.front(), report_split);
    result.comparison["split"] = report_split;
    result.comparison["difference_vs_embeddings"] = diff;
    result.comparison["interval"] = {d.low, d.high};
    result.comparison["significant"] = d.low > 0 || d.high < 0;
  }
  return result;
}


void run_probe(ProbeCommandOptions o) {
  // Flags first: nothing is read or written before they all check out.
  const int modes = int(!o.checkpoint.empty()) + int(!o.experiment.empty());
  if (modes != 1) throw ConfigError("error: give exactly one of --checkpoint and --experiment");
  if (!o.compare.empty() && o.checkpoint.empty()) flag_error("--compare", "needs --checkpoint");
  if (o.batch_size <= 0) flag_error("--batch-size", "expected a positive integer, got " + std::to_string(o.batch_size));
  if (o.max_len != 0 && o.max_len < 3)
    flag_error("--max-len", "expected at least 3 (or 0: the task's default), got " + std::to_string(o.max_len));
  if (o.bootstrap < 100) flag_error("--bootstrap", "expected at least 100 resamples, got " + std::to_string(o.bootstrap));
  if (o.max_train_examples < 0)
    flag_error("--max-train-examples", "expected 0 (all) or a positive integer, got " +
               std::to_string(o.max_train_examples));
  if (o.probe.max_iterations <= 0)
    flag_error("--max-iterations", "expected a positive integer, got " + std::to_string(o.probe.max_iterations));
  for (double l2 : o.probe.l2_grid)
    if (!(l2 >= 0)) flag_error("--l2", "expected penalties >= 0, got " + std::to_string(l2));
  if (o.probe.l2_grid.empty()) flag_error("--l2", "expected at least one penalty");
  const models::ProbePooling pooling = o.pool;
  const datasets::TaskInfo& info = datasets::task_info(o.task, "--task");
  if (std::find(info.splits.begin(), info.splits.end(), "train") == info.splits.end() || info.splits.size() < 2)
    flag_error("--task", info.name + " has no train split and evaluation split to probe with");

  std::vector<Target> targets;
  auto add_target = [&](const std::string& name, const std::string& path, const std::string& flag) {
    if (!fs::is_directory(path)) flag_error(flag, "'" + path + "': no such directory");
    Target t{name, path, models::read_checkpoint_config(path)};
    check_fits(t, info, flag);
    targets.push_back(std::move(t));
  };
  if (!o.checkpoint.empty()) {
    add_target(fs::path(o.checkpoint).lexically_normal().filename().string(), o.checkpoint, "--checkpoint");
    if (!o.compare.empty()) add_target(fs::path(o.compare).lexically_normal().filename().string(), o.compare, "--compare");
    if (targets.size() == 2 && targets[0].name == targets[1].name) targets[0].name = o.checkpoint, targets[1].name = o.compare;
  } else {
    for (const auto& [name, path] : experiment_checkpoints(o.experiment)) add_target(name, path, "--experiment");
  }
  int64_t shallowest = std::numeric_limits<int64_t>::max();
  std::string shallowest_name;
  for (const Target& t : targets)
    if (int64_t(t.config.arch.layers.size()) < shallowest)
      shallowest = int64_t(t.config.arch.layers.size()), shallowest_name = t.path;
  const std::vector<int64_t> layers = parse_layers(o.layers, shallowest, shallowest_name);
  // Funnel-pooled layers hold fewer tokens than words: a token task cannot read them per word.
  if (info.kind == datasets::TaskKind::kTokenClassification)
    for (const Target& t : targets)
      if (t.config.arch.pool.active())
        for (int64_t l : layers)
          if (l > int64_t(t.config.arch.pool.first_pooling_layer()))
            flag_error("--layers", "layer " + std::to_string(l) + " of '" + t.path +
                       "' is Funnel-pooled (fewer tokens than words), so the token task '" + info.name +
                       "' cannot probe it; allowed: 0.." + std::to_string(t.config.arch.pool.first_pooling_layer()) +
                       " for this checkpoint");
  const std::string out = !o.out.empty() ? o.out
                          : (fs::path(o.experiment.empty() ? o.checkpoint : o.experiment) /
                             ("probes-" + datasets::task_file_name(info.name)))
                                .string();
  if (fs::exists(out) && !fs::is_directory(out)) flag_error("--out", "'" + out + "' exists and is not a folder");
  // Every checkpoint's tokenizer (file, hash, vocabulary) before any work: a bad one among an
  // experiment's checkpoints fails now, not after the others were probed.
  const int64_t max_len = o.max_len > 0 ? o.max_len : info.max_length;
  for (const Target& t : targets) checkpoint_task_tokenizer(t.path, t.config, o.tokenizer, o.cache_dir, o.data_dir, max_len);

  set_torch_threads(o.threads);
  const Compute compute = resolve_compute(o.compute);
  datasets::TaskLoadOptions load;
  load.data_dir = o.data_dir;
  datasets::TaskData data = datasets::load_task(o.task, load);
  // A linear probe of a few hundred features needs far fewer than GLUE's 393k MNLI pairs or Brown's
  // 0.9M tagged words: a seeded subset of the training examples (in their order) bounds the time.
  std::vector<datasets::Example>& train = data.splits.at("train");
  const size_t all_train = train.size();
  if (o.max_train_examples > 0 && int64_t(train.size()) > o.max_train_examples) {
    std::vector<size_t> order(train.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::mt19937_64 rng(o.probe.seed);
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(size_t(o.max_train_examples));
    std::sort(order.begin(), order.end());
    std::vector<datasets::Example> kept;
    for (size_t i : order) kept.push_back(std::move(train[i]));
    train = std::move(kept);
  }
  std::cout << "probe: " << info.name << ", " << targets.size() << " checkpoint" << (targets.size() > 1 ? "s" : "")
            << ", " << train.size() << " of " << all_train << " training examples, layers";
  for (int64_t l : layers) std::cout << " " << l;
  std::cout << " (" << models::probe_pooling_name(pooling) << " pooling for sequence tasks)\n";

  std::vector<CheckpointResult> results;
  for (const Target& t : targets) results.push_back(probe_checkpoint(t, o, data, layers, compute, pooling));

  // What changed from the first checkpoint (e.g. pretrained) to each other one (e.g. fine-tuned):
  // per layer the score difference on the same test items, with a paired bootstrap interval.
  const auto score = [&info](const datasets::Predictions& p) {
    return datasets::task_score(info, datasets::compute_metrics(info, p));
  };
  for (size_t c = 1; c < results.size(); ++c) {
    CheckpointResult& r = results[c];
    const CheckpointResult& first = results.front();
    if (!torch::equal(r.report_example, first.report_example)) continue;  // other items: not paired
    auto layers_json = nlohmann::ordered_json::array();
    for (LayerResult& l : r.layers)
      for (const LayerResult& f : first.layers)
        if (f.index == l.index) {
          const auto& pa = l.predictions.at(r.report_split);
          const auto& pb = f.predictions.at(r.report_split);
          const models::Interval d =
              models::bootstrap_difference(pa, pb, r.report_example, score, o.bootstrap, o.probe.seed);
          const double diff = score(pa) - score(pb);
          layers_json.push_back({{"layer", l.index}, {"difference", diff}, {"interval", {d.low, d.high}},
                                 {"significant", d.low > 0 || d.high < 0}});
        }
    r.versus_first = {{"checkpoint", first.name}, {"split", r.report_split}, {"layers", layers_json}};
  }

  std::vector<std::string> eval_splits;
  for (const auto& s : info.splits)
    if (s != "train") eval_splits.push_back(s);
  nlohmann::ordered_json j;
  j["task"] = info.name;
  j["pooling"] = models::probe_pooling_name(pooling);
  j["probe"] = {{"model", "linear softmax regression (linear regression for regression tasks) on standardised features"},
                {"l2_grid", o.probe.l2_grid},
                {"max_iterations", o.probe.max_iterations},
                {"held_out_fraction", o.probe.held_out_fraction},
                {"seed", o.probe.seed},
                {"bootstrap_resamples", o.bootstrap}};
  j["precision"] = models::precision_name(compute.precision);
  j["device"] = compute.device.str();
  j["max_len"] = o.max_len > 0 ? o.max_len : info.max_length;
  j["train_examples"] = {{"used", train.size()}, {"of", all_train}};
  auto cj = nlohmann::ordered_json::array();
  for (const auto& r : results) cj.push_back(result_json(r));
  j["checkpoints"] = cj;
  fs::create_directories(out);
  write_file_atomic((fs::path(out) / "probes.json").string(), j.dump(2) + "\n");
  write_file_atomic((fs::path(out) / "probes.svg").string(),
                    probes_svg(results, info, eval_splits.back(),
                               info.kind == datasets::TaskKind::kTokenClassification ? "" : models::probe_pooling_name(pooling)));
  print_table(results, eval_splits);
  std::cout << "probes: " << (fs::path(out) / "probes.json").string() << ", " << (fs::path(out) / "probes.svg").string()
            << "\n";
}

void add_probe_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("probe", "layer-wise linear probes of checkpoints on a task (probes.json, probes.svg)");
  auto o = std::make_shared<ProbeCommandOptions>();
  cmd->add_option("--checkpoint", o->checkpoint, "checkpoint directory (pretrained or fine-tuned)");
  cmd->add_option("--compare", o->compare, "a second checkpoint drawn beside --checkpoint (e.g. the fine-tuned one)");
  cmd->add_option("--experiment", o->experiment, "probe every checkpoint under this folder (e.g. fine-tuning epochs)");
  cmd->add_option("--task", o->task, "spam | brown-genre | brown-pos | glue:<task>")->required();
  cmd->add_option("--layers", o->layers, "all, or indices such as 0,2,4 (0 = embeddings, l = layer l)");
  add_enum_option(cmd, "--pool", o->pool, models::probe_pooling_names(),
                  "sequence tasks: mean of the tokens, or the first (cls) token's vector");
  cmd->add_option("--data-dir", o->data_dir, "task data directory");
  cmd->add_option("--cache-dir", o->cache_dir, "token caches")->default_str("<data-dir>/cache");
  cmd->add_option("--tokenizer", o->tokenizer, "the checkpoints' tokenizer, when its recorded path moved");
  cmd->add_option("--out", o->out, "output folder")->default_str("<checkpoint or experiment>/probes-<task>");
  cmd->add_option("--max-len", o->max_len, "tokens per example; 0 = the task's default");
  cmd->add_option("--batch-size", o->batch_size, "examples per forward pass");
  cmd->add_option("--bootstrap", o->bootstrap, "bootstrap resamples of the 95% intervals");
  cmd->add_option("--max-train-examples", o->max_train_examples,
                  "train the probes on a seeded subset of at most N training examples; 0 = all");
  cmd->add_option("--l2", o->probe.l2_grid, "L2 penalties tried; the best on a held-out tenth of train is kept")
      ->delimiter(',');
  cmd->add_option("--max-iterations", o->probe.max_iterations, "L-BFGS iterations per penalty");
  cmd->add_option("--seed", o->probe.seed, "held-out examples and bootstrap resamples");
  cmd->add_option("--threads", o->threads, "torch threads; 0 = every core");
  add_compute_flags(*cmd, o->compute);
  cmd->callback([o] { run_probe(*o); });
}

FLEXNAS_REGISTER_COMMAND("probe", add_probe_command);

}  // namespace
}  // namespace flexnas::launch
