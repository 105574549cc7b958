// The job specification and the batch script (see job_script.h).
#include "launch/slurm/job_script.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <utility>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "launch/campaign/signals.h"
#include "launch/campaign/campaign_config.h"
#include "launch/cli/command.h"

namespace fs = std::filesystem;

namespace flexnas::launch {
namespace {

constexpr int64_t kMaxSignalLead = 65535;  // sbatch: sig_time is at most 65535 s
constexpr int64_t kMaxChain = 1000;

/// Single-quotes `s` for the shell unless it is made only of safe characters.
std::string shell_quote(const std::string& s) {
  static const std::regex safe("^[A-Za-z0-9_./:=@%+,-]+$");
  if (!s.empty() && std::regex_match(s, safe)) return s;
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string this_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find the flexnas executable (/proc/self/exe): " + ec.message() + "; pass --flexnas PATH");
  return p.string();
}

/// Absolute, normalised, without a trailing separator.
std::string clean_path(const std::string& path) {
  std::string p = fs::absolute(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

const EnumNames<Launcher>& launcher_names() {
  static const EnumNames<Launcher> names{{"srun", Launcher::kSrun}, {"mpirun", Launcher::kMpirun}};
  return names;
}

// ---------------------------------------------------------------------------------------------
// Validation

int64_t parse_slurm_time(const std::string& text, const std::string& flag) {
  static const std::regex forms[] = {
      std::regex("^([0-9]+)$"),                                  // M
      std::regex("^([0-9]+):([0-9]+)$"),                         // M:S
      std::regex("^([0-9]+):([0-9]+):([0-9]+)$"),                // H:M:S
      std::regex("^([0-9]+)-([0-9]+)$"),                         // D-H
      std::regex("^([0-9]+)-([0-9]+):([0-9]+)$"),                // D-H:M
      std::regex("^([0-9]+)-([0-9]+):([0-9]+):([0-9]+)$"),       // D-H:M:S
  };
  const std::string allowed =
      "expected a SLURM time limit: HH:MM:SS, MM:SS, minutes, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 24:00:00, 2-00:00:00)";
  std::smatch m;
  int form = -1;
  for (int i = 0; i < 6; ++i)
    if (std::regex_match(text, m, forms[i])) {
      form = i;
      break;
    }
  if (form < 0) flag_error(flag, "'" + text + "' is not a time limit; " + allowed);
  std::vector<int64_t> v;
  for (size_t i = 1; i < m.size(); ++i) {
    if (m[i].str().size() > 9) flag_error(flag, "'" + text + "' is too large; " + allowed);
    v.push_back(std::stoll(m[i].str()));
  }
  auto below = [&](int64_t value, int64_t limit, const char* what) {
    if (value >= limit)
      flag_error(flag, "'" + text + "': " + what + " must be below " + std::to_string(limit) + "; " + allowed);
  };
  int64_t seconds = 0;
  switch (form) {
    case 0: seconds = v[0] * 60; break;
    case 1: below(v[1], 60, "seconds"); seconds = v[0] * 60 + v[1]; break;
    case 2: below(v[1], 60, "minutes"); below(v[2], 60, "seconds"); seconds = v[0] * 3600 + v[1] * 60 + v[2]; break;
    case 3: below(v[1], 24, "hours"); seconds = v[0] * 86400 + v[1] * 3600; break;
    case 4: below(v[1], 24, "hours"); below(v[2], 60, "minutes"); seconds = v[0] * 86400 + v[1] * 3600 + v[2] * 60; break;
    default:
      below(v[1], 24, "hours"); below(v[2], 60, "minutes"); below(v[3], 60, "seconds");
      seconds = v[0] * 86400 + v[1] * 3600 + v[2] * 60 + v[3];
  }
  if (seconds < 60)
    flag_error(flag, "'" + text + "' is shorter than SLURM's minimum time limit of 1 minute (00:01:00); leave " +
                         flag + " out to get the partition's default limit");
  return seconds;
}

std::string format_slurm_time(int64_t seconds) {
  std::ostringstream s;
  // Up to one day as HH:MM:SS (24:00:00 reads as asked); longer limits as D-HH:MM:SS.
  if (seconds > 86400) {
    s << seconds / 86400 << "-";
    seconds %= 86400;
  }
  s << std::setfill('0') << std::setw(2) << seconds / 3600 << ":" << std::setw(2) << (seconds / 60) % 60 << ":"
    << std::setw(2) << seconds % 60;
  return s.str();
}

void validate_resources(const SlurmResources& r) {
  if (r.nodes < 1) flag_error("--nodes", "expected a whole number >= 1, got " + std::to_string(r.nodes));
  if (r.ntasks_per_node < 1)
    flag_error("--ntasks-per-node", "expected a whole number >= 1, got " + std::to_string(r.ntasks_per_node));
  if (r.gpus_per_task < 0)
    flag_error("--gpus-per-task", "expected a whole number >= 0, got " + std::to_string(r.gpus_per_task));
  if (r.cpus_per_task < 0)
    flag_error("--cpus-per-task", "expected a whole number >= 1, got " + std::to_string(r.cpus_per_task));
  static const std::regex mem("^[1-9][0-9]*[KMGT]?$");
  if (!r.mem.empty() && !std::regex_match(r.mem, mem))
    flag_error("--mem", "'" + r.mem + "' is not a memory size; expected a positive whole number with an optional "
                                      "unit K, M, G or T (megabytes when none), e.g. 16G or 64000M");
  if (!r.time.empty()) parse_slurm_time(r.time, "--time");
  static const std::regex name("^[A-Za-z0-9_.-]+$");
  static const std::regex names("^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$");
  if (!r.partition.empty() && !std::regex_match(r.partition, names))
    flag_error("--partition", "'" + r.partition + "' is not a partition name; expected letters, digits, '_', '.', "
                                                  "'-' (several partitions separated by commas)");
  if (!r.account.empty() && !std::regex_match(r.account, name))
    flag_error("--account", "'" + r.account + "' is not an account name; expected letters, digits, '_', '.', '-'");
  if (!r.qos.empty() && !std::regex_match(r.qos, name))
    flag_error("--qos", "'" + r.qos + "' is not a QOS name; expected letters, digits, '_', '.', '-'");
}

SlurmJobSpec make_job_spec(const SlurmSubmitOptions& o) {
  validate_resources(o.resources);
  if (o.chain < 0 || o.chain > kMaxChain)
    flag_error("--chain", "expected a whole number in 0.." + std::to_string(kMaxChain) + ", got " + std::to_string(o.chain));
  if (o.signal_lead < 0 || o.signal_lead > kMaxSignalLead)
    flag_error("--signal-lead", "expected seconds in 1.." + std::to_string(kMaxSignalLead) + " (0 = the campaign's "
               "scheduler.drain_timeout + " + std::to_string(kSignalLeadMargin) + "), got " + std::to_string(o.signal_lead));
  static const std::regex mpi_type("^[A-Za-z0-9_]+$");
  if (!o.mpi.empty() && !std::regex_match(o.mpi, mpi_type))
    flag_error("--mpi", "'" + o.mpi + "' is not an srun MPI type (e.g. pmix, pmi2, pmix_v4)");
  if (!o.mpi.empty() && o.launcher != Launcher::kSrun) flag_error("--mpi", "only applies to --launcher srun");

  SlurmJobSpec spec;
  spec.resources = o.resources;
  spec.launcher = o.launcher;
  spec.mpi = o.mpi;

  // The campaign file: every mistake is a located error before anything is written.
  const CampaignConfig config = load_campaign_config(o.campaign);
  spec.campaign_file = clean_path(o.campaign);
  spec.campaign_dir = clean_path(config.directory);
  spec.job_name = "flexnas-" + config.name;

  spec.flexnas = o.flexnas.empty() ? this_executable() : clean_path(o.flexnas);
  if (!fs::is_regular_file(spec.flexnas) || access(spec.flexnas.c_str(), X_OK) != 0)
    flag_error("--flexnas", "'" + spec.flexnas + "' is not an executable file");

  if (!o.setup.empty()) {
    if (!fs::is_regular_file(o.setup)) flag_error("--setup", "file not found: " + o.setup);
    spec.setup_file = clean_path(o.setup);
    spec.setup_text = read_file(spec.setup_file);
    if (!spec.setup_text.empty() && spec.setup_text.back() != '\n') spec.setup_text += '\n';
  }

  const double drain = config.scheduler.drain_timeout;
  spec.signal_lead = o.signal_lead > 0 ? o.signal_lead : static_cast<int64_t>(std::ceil(drain)) + kSignalLeadMargin;
  if (!o.resources.time.empty()) {
    const int64_t limit = parse_slurm_time(o.resources.time, "--time");
    if (spec.signal_lead >= limit)
      flag_error("--signal-lead",
                 std::to_string(spec.signal_lead) + " s " +
                     (o.signal_lead > 0 ? std::string("is")
                                        : "(the default: drain_timeout + " + std::to_string(kSignalLeadMargin) + " s) is") +
                     " not shorter than the time limit --time " + o.resources.time + " (" + std::to_string(limit) +
                     " s): the campaign would be told to stop as soon as it starts; give a longer --time or a "
                     "shorter --signal-lead");
    // sbatch(1): "Due to the resolution of event handling by Slurm, the signal may be sent up to 60
    // seconds earlier than specified." The job still drains at the signal and the chain resumes.
    if (limit < spec.signal_lead + 60)
      LOG_WARN("--time ", o.resources.time, " (", limit, " s) is less than --signal-lead (", spec.signal_lead,
               " s) + 60 s: SLURM may send USR1 up to 60 s early, so a job can be told to drain at any time from its "
               "start and run few or no trials (a longer --time makes each job useful)");
  }
  if (static_cast<double>(spec.signal_lead) < drain + 5)
    LOG_WARN("--signal-lead ", spec.signal_lead, " s leaves less than the campaign's scheduler.drain_timeout (", drain,
             " s) + 5 s: trials still running at the time limit are killed and re-run on resume");
  return spec;
}

// ---------------------------------------------------------------------------------------------
// The script

std::string slurm_dir(const std::string& campaign_dir) { return (fs::path(campaign_dir) / "slurm").string(); }
std::string sbatch_script_path(const std::string& campaign_dir) {
  return (fs::path(slurm_dir(campaign_dir)) / "job.sbatch").string();
}
std::string slurm_jobs_path(const std::string& campaign_dir) {
  return (fs::path(slurm_dir(campaign_dir)) / "jobs.json").string();
}
std::string slurm_finished_path(const std::string& campaign_dir) {
  return (fs::path(slurm_dir(campaign_dir)) / "finished").string();
}

std::string sbatch_script(const SlurmJobSpec& spec) {
  const SlurmResources& r = spec.resources;
  // The variables `flexnas search` reads (launch/campaign/signals.h), as the script exports and uses them.
  const std::string drain_var = kDrainFileEnv, finished_var = kFinishedFileEnv;
  const std::string drain_file = "\"$" + drain_var + "\"", finished_file = "\"$" + finished_var + "\"";
  const std::string sdir = slurm_dir(spec.campaign_dir);
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# flexnas search campaign as a SLURM job, written by `flexnas slurm submit`.\n"
    << "# Campaign: " << spec.campaign_file << "\n"
    << "# Submitting this file again (sbatch " << sbatch_script_path(spec.campaign_dir)
    << ") resumes the campaign where it stopped.\n";
  s << "#SBATCH --job-name=" << spec.job_name << "\n";
  s << "#SBATCH --nodes=" << r.nodes << "\n";
  s << "#SBATCH --ntasks-per-node=" << r.ntasks_per_node << "\n";
  if (r.cpus_per_task > 0) s << "#SBATCH --cpus-per-task=" << r.cpus_per_task << "\n";
  if (r.gpus_per_task > 0) s << "#SBATCH --gpus-per-task=" << r.gpus_per_task << "\n";
  if (!r.mem.empty()) s << "#SBATCH --mem=" << r.mem << "\n";
  if (!r.time.empty()) s << "#SBATCH --time=" << format_slurm_time(parse_slurm_time(r.time)) << "\n";
  if (!r.partition.empty()) s << "#SBATCH --partition=" << r.partition << "\n";
  if (!r.account.empty()) s << "#SBATCH --account=" << r.account << "\n";
  if (!r.qos.empty()) s << "#SBATCH --qos=" << r.qos << "\n";
  // B: the signal goes to this batch shell only (not to the steps), which forwards it below.
  s << "#SBATCH --signal=B:USR1@" << spec.signal_lead << "\n";
  s << "#SBATCH --output=" << sdir << "/job-%j.out\n";
  s << "#SBATCH --error=" << sdir << "/job-%j.err\n";
  s << "\n"
    << "set -u\n"
    << "FLEXNAS=" << shell_quote(spec.flexnas) << "\n"
    << "CAMPAIGN=" << shell_quote(spec.campaign_file) << "\n"
    << "CAMPAIGN_DIR=" << shell_quote(spec.campaign_dir) << "\n"
    << "SLURM_DIR=\"$CAMPAIGN_DIR/slurm\"\n"
    << "JOB=${SLURM_JOB_ID:-local}\n"
    << "\n"
    << "# Records the exit code of this job's `flexnas search` for `flexnas slurm status`.\n"
    << "record_exit() { echo \"$1\" >\"$SLURM_DIR/job-$JOB.exit.tmp\" && "
       "mv -f \"$SLURM_DIR/job-$JOB.exit.tmp\" \"$SLURM_DIR/job-$JOB.exit\"; }\n"
    << "# Cancels the jobs of the chain still waiting to start (the campaign needs no more).\n"
    << "stop_chain() { \"$FLEXNAS\" slurm cancel \"$CAMPAIGN_DIR\" --pending-only || true; }\n"
    << "\n"
    << "# USR1 (--signal=B:USR1@" << spec.signal_lead << ") reaches this shell only. SLURM may send it any time up to\n"
    << "# 60 s before the requested lead, even before the job step exists, and srun swallows a signal that\n"
    << "# arrives while it starts the step. So the signal is written to $FLEXNAS_DRAIN_FILE, which\n"
    << "# `flexnas search` polls, and forwarded to the step when there is one: `flexnas search` then stops\n"
    << "# handing out work, waits for running trials (scheduler.drain_timeout) and exits 128+signal; the\n"
    << "# next job resumes. `flexnas search` writes $FLEXNAS_FINISHED_FILE when the campaign finished.\n"
    << "export " << drain_var << "=\"$SLURM_DIR/job-$JOB.drain\"\n"
    << "export " << finished_var << "=\"$SLURM_DIR/job-$JOB.finished\"\n"
    << "rm -f " << drain_file << " " << finished_file << "\n"
    << "step=\n"
    << "on_signal() {\n"
    << "  echo \"$2\" >" << drain_file << "\n"
    << "  if [ -n \"$step\" ]; then kill -s \"$1\" \"$step\" 2>/dev/null || true; fi\n"
    << "}\n";
  // The numbers are what drain_file_signal() reads back (launch/campaign/signals.cpp).
  for (const auto& [name, number] : {std::pair<const char*, int>{"USR1", SIGUSR1}, {"TERM", SIGTERM}, {"INT", SIGINT}})
    s << "trap 'on_signal " << name << " " << number << "' " << name << "\n";
  s << "\n"
    << "# A chained job that starts after the campaign finished has nothing to do.\n"
    << "if [ -e \"$SLURM_DIR/finished\" ]; then\n"
    << "  echo \"flexnas: the campaign is already finished ($SLURM_DIR/finished); nothing to do\"\n"
    << "  record_exit 0\n"
    << "  stop_chain\n"
    << "  exit 0\n"
    << "fi\n"
    << "\n";
  if (!spec.setup_text.empty()) {
    s << "# Environment set-up, from " << spec.setup_file << ":\n" << spec.setup_text << "# (end of set-up)\n\n";
  }
  s << "# The first job starts the campaign; every later one resumes it.\n"
    << "RESUME=\n"
    << "if [ -e \"$CAMPAIGN_DIR/campaign.db\" ]; then RESUME=--resume; fi\n"
    << "echo \"flexnas: job $JOB on $(hostname) at $(date -u +%FT%TZ): flexnas search $CAMPAIGN $RESUME\"\n";
  const int64_t tasks = r.nodes * r.ntasks_per_node;
  if (spec.launcher == Launcher::kSrun) {
    // srun in SLURM 22.05 does not inherit --cpus-per-task from the allocation: state it again.
    s << "srun --nodes=" << r.nodes << " --ntasks=" << tasks << " --ntasks-per-node=" << r.ntasks_per_node;
    if (r.cpus_per_task > 0) s << " --cpus-per-task=" << r.cpus_per_task;
    if (r.gpus_per_task > 0) s << " --gpus-per-task=" << r.gpus_per_task;
    if (!spec.mpi.empty()) s << " --mpi=" << spec.mpi;
    s << " \\\n    \"$FLEXNAS\" search \"$CAMPAIGN\" $RESUME &\n";
  } else {
    // Open MPI reads the allocation from SLURM's environment.
    s << "mpirun -np " << tasks << " --map-by ppr:" << r.ntasks_per_node << ":node"
      << " -x " << drain_var << " -x " << finished_var
      << " \\\n    \"$FLEXNAS\" search \"$CAMPAIGN\" $RESUME &\n";
  }
  s << "step=$!\n"
    << "wait \"$step\"; rc=$?\n"
    << "# wait returns early (> 128) when a trapped signal arrives while the step drains: wait again.\n"
    << "while [ \"$rc\" -gt 128 ] && kill -0 \"$step\" 2>/dev/null; do wait \"$step\"; rc=$?; done\n"
    << "# srun can end with 0 without having run flexnas (a signal while it started the step): only\n"
    << "# flexnas's own note says the campaign finished.\n"
    << "if [ \"$rc\" = 0 ] && [ ! -e " << finished_file << " ]; then rc=" << kSlurmStepUnconfirmedExit << "; fi\n"
    << "record_exit \"$rc\"\n"
    << "\n"
    << "case \"$rc\" in\n"
    << "  0)\n"
    << "    echo \"flexnas: the campaign is finished: $(cat " << finished_file << ")\"\n"
    << "    date -u +%FT%TZ >\"$SLURM_DIR/finished\"\n"
    << "    stop_chain ;;\n"
    << "  " << kSlurmStepUnconfirmedExit << ")\n"
    << "    echo \"flexnas: the job step ended with exit 0 but flexnas search did not report the campaign finished"
       " (exit " << kSlurmStepUnconfirmedExit << "); the next job of the chain resumes the campaign\" ;;\n"
    << "  2)\n"
    << "    echo \"flexnas: the campaign configuration was rejected (exit 2, see job-$JOB.err); not resuming\"\n"
    << "    stop_chain ;;\n"
    << "  129|130|138|143)\n"
    << "    echo \"flexnas: drained on signal $((rc - 128)) (exit $rc); the next job of the chain resumes the campaign\" ;;\n"
    << "  *)\n"
    << "    echo \"flexnas: flexnas search ended with exit $rc (see job-$JOB.err); the next job of the chain resumes the campaign\" ;;\n"
    << "esac\n"
    << "exit \"$rc\"\n";
  return s.str();
}

std::vector<std::vector<std::string>> sbatch_commands(const std::string& script_path, int64_t chain) {
  std::vector<std::vector<std::string>> commands;
  commands.push_back({"sbatch", "--parsable", script_path});
  for (int64_t i = 0; i < chain; ++i) commands.push_back({"sbatch", "--parsable", "--dependency=afterany:{prev}", script_path});
  return commands;
}

std::string resolve_campaign_dir(const std::string& dir_or_yaml) {
  if (fs::is_directory(dir_or_yaml)) return clean_path(dir_or_yaml);
  if (fs::is_regular_file(dir_or_yaml)) {
    const CampaignConfig config = load_campaign_config(dir_or_yaml);
    return clean_path(config.directory);
  }
  throw ConfigError("error: " + dir_or_yaml + ": no such campaign directory or campaign file");
}

}  // namespace flexnas::launch
