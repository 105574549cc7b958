// flexnas report: a results table across fine-tuned models (tasks x models, parameters, the
// GLUE-style suite score), from `flexnas finetune` output folders (--models) or from the best
// trials of a campaign (--campaign, --top). launch/report/model_table.h does the work.
#include <iostream>

#include "design_space/atomic_file.h"
#include "launch/cli/command.h"
#include "launch/cli/enum_option.h"
#include "launch/report/model_table.h"

namespace flexnas::launch {
namespace {

struct ReportCliOptions {
  std::vector<std::string> models;  // finetune output folders, or folders holding several
  std::string campaign;             // a campaign directory (campaign.db)
  int64_t top = 10;                 // --campaign: the best K trials
  ModelTableOptions table;          // --format, --metrics
  std::string out;                  // "" = stdout
};

void run_report(const ReportCliOptions& o, bool top_given) {
  if (o.models.empty() == o.campaign.empty())
    flag_error(o.models.empty() ? "--models" : "--campaign",
               o.models.empty() ? "required: the fine-tuned models (--models DIR...) or a campaign (--campaign DIR)"
                                : "give --models or --campaign, not both");
  if (o.top <= 0) flag_error("--top", "expected a positive integer, got " + std::to_string(o.top));
  if (top_given && o.campaign.empty()) flag_error("--top", "only with --campaign");
  const std::vector<ModelRow> rows = o.campaign.empty() ? read_model_dirs(o.models) : read_campaign_rows(o.campaign, o.top);
  const std::string text = format_model_table(rows, o.table);
  if (o.out.empty()) {
    std::cout << text;
    return;
  }
  write_file_atomic(o.out, text);
  std::cout << "report: " << rows.size() << (rows.size() == 1 ? " model" : " models") << ", "
            << table_tasks(rows).size() << " tasks -> " << o.out << "\n";
}

void add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "a results table across fine-tuned models: tasks x models, parameters, suite score");
  auto o = std::make_shared<ReportCliOptions>();
  cmd->add_option("--models", o->models,
                  "flexnas finetune output folders (one task or a suite), or folders holding several")
      ->expected(1, -1);
  cmd->add_option("--campaign", o->campaign, "a campaign directory: its best trials' fine-tuned models");
  cmd->add_option("--top", o->top, "with --campaign: the K trials with the best objective");
  add_enum_option(cmd, "--format", o->table.format, table_format_names(),
                  "md: a Markdown table with notes; csv: a header row, plain numbers");
  cmd->add_flag("--metrics", o->table.metrics, "also a column per metric of each task (selection splits)");
  cmd->add_option("--out", o->out, "write the table to this file (atomically) instead of stdout");
  cmd->callback([o, cmd] { run_report(*o, cmd->count("--top") > 0); });
}

FLEXNAS_REGISTER_COMMAND("report", add_report_command);

}  // namespace
}  // namespace flexnas::launch
