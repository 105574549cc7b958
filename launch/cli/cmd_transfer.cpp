// flexnas transfer: warm-start a target architecture from a trained checkpoint (spec §6, defects
// 29-31 fixed) and write a normal checkpoint; prints the overlap and, per block, how many parameters
// were copied, sliced (od), projected (rp) or left fresh.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "design_space/architecture.h"
#include "design_space/config_node.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "models/checkpoint.h"
#include "models/safetensors.h"
#include "transfer/transfer.h"

namespace flexnas::launch {
namespace {

struct TransferCliOptions {
  std::string from;        // source checkpoint directory
  std::string to;          // target model-dict JSON
  transfer::TransferMode mode = transfer::TransferOptions{}.mode;
  std::string out;         // target checkpoint directory
  int64_t seed = int64_t(transfer::TransferOptions{}.seed);  // fresh initialisation and rp projections
};

void run_transfer(const TransferCliOptions& o) {
  namespace fs = std::filesystem;
  const transfer::TransferMode mode = o.mode;
  if (o.seed < 0) flag_error("--seed", "expected a non-negative integer, got " + std::to_string(o.seed));
  if (!fs::is_directory(o.from)) flag_error("--from", "'" + o.from + "' is not a checkpoint directory");
  if (fs::exists(o.out) && fs::equivalent(o.out, o.from))
    flag_error("--out", "'" + o.out + "' is the source checkpoint; choose another directory");
  const models::CheckpointConfig source = models::read_checkpoint_config(o.from);
  const ConfigNode node = ConfigNode::load_file(o.to);
  const Architecture target_arch = architecture_from_config(node);
  models::validate_architecture(target_arch, source.options, o.to, &node);
  if (target_arch.format != source.arch.format)
    throw ConfigError(o.to + ": error: the target is in the " + std::string(target_arch.is_hetero() ? "hetero" : "standard") +
                      " format but the source checkpoint '" + o.from + "' is in the " +
                      (source.arch.is_hetero() ? "hetero" : "standard") + " format (transfer needs the same format)");
  const std::string weights = (fs::path(o.from) / models::kWeightsFile).string();
  const auto tensors = models::read_safetensors(weights);

  torch::manual_seed(uint64_t(o.seed));  // the fresh part of the target
  models::FlexModel target(target_arch, source.options);
  transfer::TransferOptions options;
  options.mode = mode;
  options.seed = uint64_t(o.seed);
  const transfer::TransferPlan plan =
      transfer::transfer_weights(source.arch, source.options, tensors, *target, options, nullptr, weights);
  std::string tokenizer;
  if (!source.tokenizer_file.empty()) {
    if (fs::exists(source.tokenizer_file))
      tokenizer = source.tokenizer_file;
    else
      LOG_WARN("the source's tokenizer '", source.tokenizer_file, "' is not there; the new checkpoint names none");
  }
  models::save_checkpoint(o.out, *target, tokenizer);

  std::cout << "source: " << o.from << " (" << source.arch.num_layers() << " layers)\n"
            << "target: " << o.to << " (" << target_arch.num_layers() << " layers)\n"
            << "mode: " << transfer::mode_name(mode) << ", seed " << o.seed << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %12s %12s %12s %12s %12s\n", "block", "copied", "sliced", "projected", "fresh",
                "total");
  std::cout << line;
  for (const auto& b : transfer::summarize_blocks(plan)) {
    std::snprintf(line, sizeof line, "%-14s %12lld %12lld %12lld %12lld %12lld\n", b.block.c_str(), (long long)b.copied,
                  (long long)b.sliced, (long long)b.projected, (long long)b.fresh, (long long)b.total);
    std::cout << line;
  }
  std::snprintf(line, sizeof line, "overlap: %.6f (%lld of %lld parameters received source values)\n", plan.overlap(),
                (long long)plan.received, (long long)plan.total);
  std::cout << line << "checkpoint: " << o.out << "\n";
}

void add_transfer_command(CLI::App& app) {
  auto o = std::make_shared<TransferCliOptions>();
  auto* cmd = app.add_subcommand("transfer", "warm-start a target architecture from a trained checkpoint");
  cmd->add_option("--from", o->from, "source checkpoint directory")->required();
  cmd->add_option("--to", o->to, "target model-dict JSON (same format as the source)")->required();
  add_enum_option(cmd, "--mode", o->mode, transfer::transfer_mode_names(),
                  "od copies the overlapping slices, rp projects randomly");
  cmd->add_option("--out", o->out, "target checkpoint directory")->required();
  cmd->add_option("--seed", o->seed, "seed of the fresh initialisation and the rp projections");
  cmd->callback([o] { run_transfer(*o); });
}

FLEXNAS_REGISTER_COMMAND("transfer", add_transfer_command);

}  // namespace
}  // namespace flexnas::launch
