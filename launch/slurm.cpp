// SLURM submission, status and cancellation for search campaigns (see slurm.h).
#include "launch/slurm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "design_space/log.h"
#include "launch/campaign.h"
#include "launch/campaign_config.h"

namespace fs = std::filesystem;

namespace flexnas::launch {
namespace {

constexpr int64_t kMaxSignalLead = 65535;  // sbatch: sig_time is at most 65535 s
constexpr int64_t kMaxChain = 1000;

[[noreturn]] void flag_error(const std::string& flag, const std::string& message) {
  throw ConfigError("error: " + flag + ": " + message);
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!s.empty() && s.back() == sep) parts.emplace_back();
  return parts;
}

/// Single-quotes `s` for the shell unless it is made only of safe characters.
std::string shell_quote(const std::string& s) {
  static const std::regex safe("^[A-Za-z0-9_./:=@%+,-]+$");
  if (!s.empty() && std::regex_match(s, safe)) return s;
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string this_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find the flexnas executable (/proc/self/exe): " + ec.message() + "; pass --flexnas PATH");
  return p.string();
}

std::string join_ids(const std::vector<std::string>& ids, const std::string& sep = ",") {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : sep) + id;
  return s;
}

/// The first word of a SLURM state ("CANCELLED by 0" -> "CANCELLED"; "CANCELLED+" -> "CANCELLED").
std::string base_state(const std::string& state) {
  std::string s = trim(state);
  const auto sp = s.find(' ');
  if (sp != std::string::npos) s = s.substr(0, sp);
  while (!s.empty() && s.back() == '+') s.pop_back();
  return s;
}

/// "Key=Value Key=Value ..." of `scontrol show job -o` (values may contain no spaces except the
/// last keys; we only read simple ones).
std::map<std::string, std::string> parse_scontrol(const std::string& line) {
  std::map<std::string, std::string> kv;
  std::istringstream in(line);
  std::string token;
  while (in >> token) {
    const auto eq = token.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    kv.emplace(token.substr(0, eq), token.substr(eq + 1));
  }
  return kv;
}

/// Absolute, normalised, without a trailing separator.
std::string clean_path(const std::string& path) {
  std::string p = fs::absolute(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool same_path(const std::string& a, const std::string& b) {
  if (a == b) return true;
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

/// The exit code of `flexnas search` written by the job script, or -1.
int read_exit_file(const std::string& campaign_dir, const std::string& id) {
  const fs::path p = fs::path(slurm_dir(campaign_dir)) / ("job-" + id + ".exit");
  std::error_code ec;
  if (!fs::exists(p, ec)) return -1;
  try {
    const std::string text = trim(read_file(p.string()));
    static const std::regex number("^[0-9]{1,3}$");
    return std::regex_match(text, number) ? std::stoi(text) : -1;
  } catch (const Error&) {
    return -1;
  }
}

void require_found(const CommandOutput& out, const std::string& program) {
  if (out.found) return;
  throw Error(program + " not found on PATH: flexnas needs SLURM's client commands (sbatch, squeue, scontrol, "
                        "scancel). On a cluster, run this on a login node or load the site's slurm module; on "
                        "Debian/Ubuntu install the package slurm-client (or slurm-wlm for a local test cluster, "
                        "see scripts/slurm-local.sh)");
}

}  // namespace

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
    flag_error("--chain", "expected a whole number in 0.." + std::to_string(kMaxChain) + ", got " +
                              std::to_string(o.chain));
  if (o.signal_lead < 0 || o.signal_lead > kMaxSignalLead)
    flag_error("--signal-lead", "expected seconds in 1.." + std::to_string(kMaxSignalLead) + " (0 = the campaign's "
                                "scheduler.drain_timeout + 30), got " + std::to_string(o.signal_lead));
  if (o.launcher != "srun" && o.launcher != "mpirun")
    flag_error("--launcher", "unknown launcher '" + o.launcher + "' (allowed: srun, mpirun)");
  static const std::regex mpi_type("^[A-Za-z0-9_]+$");
  if (!o.mpi.empty() && !std::regex_match(o.mpi, mpi_type))
    flag_error("--mpi", "'" + o.mpi + "' is not an srun MPI type (e.g. pmix, pmi2, pmix_v4)");
  if (!o.mpi.empty() && o.launcher != "srun") flag_error("--mpi", "only applies to --launcher srun");

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
  spec.signal_lead = o.signal_lead > 0 ? o.signal_lead : static_cast<int64_t>(std::ceil(drain)) + 30;
  if (!o.resources.time.empty()) {
    const int64_t limit = parse_slurm_time(o.resources.time, "--time");
    if (spec.signal_lead >= limit)
      flag_error("--signal-lead",
                 std::to_string(spec.signal_lead) + " s " + (o.signal_lead > 0 ? "is" : "(the default: drain_timeout + 30 s) is") +
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
  // The variables `flexnas search` reads (launch/campaign.h), as the script exports and uses them.
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
  // The numbers are what drain_file_signal() reads back (launch/campaign.cpp).
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
  if (spec.launcher == "srun") {
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

// ---------------------------------------------------------------------------------------------
// Running client commands

CommandOutput run_command(const std::vector<std::string>& argv) {
  FLEXNAS_CHECK(!argv.empty(), "run_command without a program");
  CommandOutput result;
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0 || pipe(exec_pipe) != 0)
    throw Error(std::string("cannot create pipes to run ") + argv[0] + ": " + std::strerror(errno));
  fcntl(exec_pipe[1], F_SETFD, FD_CLOEXEC);
  const pid_t pid = fork();
  if (pid < 0) throw Error(std::string("cannot start ") + argv[0] + ": " + std::strerror(errno));
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    close(out_pipe[0]); close(out_pipe[1]); close(err_pipe[0]); close(err_pipe[1]); close(exec_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    const int e = errno;  // tell the parent why exec failed
    ssize_t ignored = write(exec_pipe[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  close(out_pipe[1]); close(err_pipe[1]); close(exec_pipe[1]);
  int exec_errno = 0;
  const bool exec_failed = read(exec_pipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
  close(exec_pipe[0]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  char buf[4096];
  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_failed) {
    result.found = exec_errno != ENOENT;
    result.exit_code = 127;
    result.err = argv[0] + ": " + std::strerror(exec_errno);
    return result;
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Job records

std::vector<SlurmJobRecord> read_job_records(const std::string& campaign_dir) {
  const std::string path = slurm_jobs_path(campaign_dir);
  std::vector<SlurmJobRecord> jobs;
  if (!fs::exists(path)) return jobs;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a valid jobs file (" + e.what() + "); remove it to forget the recorded jobs");
  }
  if (!j.is_object() || !j.contains("jobs") || !j["jobs"].is_array())
    throw Error(path + ": not a valid jobs file (expected an object with a 'jobs' list)");
  for (const auto& item : j["jobs"]) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_string())
      throw Error(path + ": not a valid jobs file (a job without a string 'id')");
    SlurmJobRecord r;
    r.id = item["id"].get<std::string>();
    r.dependency = item.value("dependency", "");
    r.submitted = item.value("submitted", "");
    r.submission = item.value("submission", int64_t{0});
    jobs.push_back(r);
  }
  return jobs;
}

void write_job_records(const std::string& campaign_dir, const std::vector<SlurmJobRecord>& jobs) {
  nlohmann::ordered_json j;
  j["format"] = "flexnas-slurm-jobs";
  j["version"] = 1;
  j["campaign_dir"] = campaign_dir;
  j["script"] = sbatch_script_path(campaign_dir);
  j["jobs"] = nlohmann::ordered_json::array();
  for (const auto& r : jobs) {
    nlohmann::ordered_json item;
    item["id"] = r.id;
    item["submission"] = r.submission;
    item["submitted"] = r.submitted;
    item["dependency"] = r.dependency;
    j["jobs"].push_back(item);
  }
  fs::create_directories(slurm_dir(campaign_dir));
  write_file_atomic(slurm_jobs_path(campaign_dir), j.dump(2) + "\n");
}

// ---------------------------------------------------------------------------------------------
// States

bool slurm_state_active(const std::string& state) {
  static const std::set<std::string> active = {"PENDING",   "RUNNING",  "CONFIGURING", "COMPLETING", "SUSPENDED",
                                               "REQUEUED",  "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING",
                                               "STAGE_OUT", "STOPPED",  "RESV_DEL_HOLD", "SPECIAL_EXIT"};
  return active.count(base_state(state)) > 0;
}

std::string explain_exit_code(int code) {
  switch (code) {
    case 0: return "exit 0: the campaign finished (budget used up or converged)";
    case 1: return "exit 1: an error (I/O, internal); read the job's .err file, fix it, then resume";
    case 2: return "exit 2: the campaign configuration or a flag was rejected; fix it (the message is in the .err file), then resubmit";
    case kSlurmStepUnconfirmedExit:
      return "exit " + std::to_string(kSlurmStepUnconfirmedExit) +
             ": the job step ended with 0 but flexnas search did not report the campaign finished (srun was "
             "signalled while starting it, or flexnas never ran); completed trials are kept and the next job resumes";
    case 127: return "exit 127: a command was not found in the job (check the set-up file and the flexnas path)";
    case 129: return "exit 129: drained on SIGHUP; completed trials are kept and a resume continues";
    case 130: return "exit 130: drained on SIGINT; completed trials are kept and a resume continues";
    case 137: return "exit 137: killed with SIGKILL (time limit passed while draining, memory, or scancel); the trials that were running are re-run on resume";
    case 138: return "exit 138: drained on SIGUSR1 before the time limit; completed trials are kept and the next job resumes";
    case 143: return "exit 143: drained on SIGTERM (scancel, preemption or the time limit); completed trials are kept and a resume continues";
    default:
      if (code > 128) return "exit " + std::to_string(code) + ": ended by signal " + std::to_string(code - 128);
      return "exit " + std::to_string(code) + ": flexnas search failed; read the job's .err file";
  }
}

std::string explain_slurm_state(const SlurmJobState& job) {
  const std::string state = base_state(job.state);
  const std::string exit_note = job.search_exit >= 0 ? " (flexnas search: " + explain_exit_code(job.search_exit) + ")" : "";
  if (state == "PENDING") {
    if (job.reason == "Dependency") return "waiting for the previous job of the chain to end";
    return "waiting in the queue" + (job.reason.empty() || job.reason == "None" ? std::string() : " (" + job.reason + ")");
  }
  if (state == "RUNNING") return "running the campaign; it drains at the USR1 signal before the time limit";
  if (state == "CONFIGURING") return "nodes are being prepared; the job starts soon";
  if (state == "COMPLETING") return "ending: SLURM is cleaning up the job's processes";
  if (state == "SUSPENDED" || state == "STOPPED") return "suspended by SLURM or an administrator; it continues when resumed";
  if (state == "REQUEUED" || state == "REQUEUE_HOLD" || state == "REQUEUE_FED")
    return "requeued by SLURM (e.g. after preemption or a node failure); it resumes the campaign when it starts again";
  if (state == "COMPLETED") {
    if (job.search_exit == 0 || job.search_exit < 0) return "ended normally: the campaign finished" + exit_note;
    return "ended normally" + exit_note;
  }
  if (state == "FAILED") {
    // The job's exit code is that of flexnas search; SLURM prints it as "code:signal".
    int code = job.search_exit;
    if (code < 0 && !job.exit_code.empty() && std::isdigit(static_cast<unsigned char>(job.exit_code[0])))
      code = std::atoi(job.exit_code.c_str());
    if (code >= 129 && code <= 143)
      return "ended with a non-zero exit because the campaign drained on a signal (flexnas search: " +
             explain_exit_code(code) + "); this is expected at a time limit";
    if (code == kSlurmStepUnconfirmedExit)
      return "ended without finishing the campaign (" + explain_exit_code(code) + ")";
    const std::string detail =
        job.search_exit >= 0 ? exit_note : (job.exit_code.empty() ? "" : " (exit " + job.exit_code + ")");
    return "failed: flexnas search or the set-up lines ended with an error" + detail +
           "; read the job's .err file; a resume re-runs the interrupted trials";
  }
  if (state == "TIMEOUT")
    return "hit the time limit before the campaign had drained: the signal lead was shorter than the trials needed "
           "to finish (raise --signal-lead or lower scheduler.drain_timeout); completed trials are kept and the "
           "trials that were running are re-run on resume" + exit_note;
  if (state == "CANCELLED")
    return "cancelled (by `flexnas slurm cancel`, scancel, an administrator, or by the chain once the campaign "
           "finished); completed trials are kept; `flexnas slurm submit` resumes" + exit_note;
  if (state == "OUT_OF_MEMORY")
    return "killed for using more memory than --mem allows; raise --mem or lower `workers` / trial.memory_limit_mb, "
           "then resubmit (completed trials are kept)";
  if (state == "NODE_FAIL")
    return "a node of the job failed; completed trials are kept; the next chained job (or `flexnas slurm submit`) "
           "re-runs the interrupted trials";
  if (state == "PREEMPTED")
    return "preempted by a higher-priority job; completed trials are kept; the next chained job (or `flexnas slurm "
           "submit`) resumes" + exit_note;
  if (state == "BOOT_FAIL") return "a node failed to boot; resubmit (completed trials are kept)";
  if (state == "DEADLINE") return "reached its --deadline before it could run or finish; resubmit";
  if (state == "REVOKED") return "revoked (a federated cluster ran a sibling job)";
  if (state == "UNKNOWN") {
    if (job.search_exit >= 0) return "no longer known to SLURM" + exit_note;
    return "no longer known to SLURM (it ended more than MinJobAge ago and accounting is off), and it left no "
           "exit file: it never ran flexnas search, or it was killed before it ended";
  }
  return "state " + job.state + (job.reason.empty() ? "" : " (" + job.reason + ")");
}

std::vector<SlurmJobState> query_jobs(const std::string& campaign_dir, const std::vector<SlurmJobRecord>& jobs,
                                      const CommandRunner& run) {
  const std::string script = sbatch_script_path(campaign_dir);
  std::vector<SlurmJobState> states;
  std::map<std::string, size_t> index;
  std::vector<std::string> ids;
  for (const auto& r : jobs) {
    SlurmJobState s;
    s.id = r.id;
    s.state = "UNKNOWN";
    s.source = "none";
    index[r.id] = states.size();
    states.push_back(s);
    ids.push_back(r.id);
  }
  if (ids.empty()) return states;

  // 1. squeue: queued, running and recently ended jobs. A job id is only ours if its command is
  //    our script (ids restart on a re-created cluster).
  const CommandOutput q = run({"squeue", "--noheader", "--states=all", "--jobs=" + join_ids(ids), "--format=%i|%T|%r|%M|%o"});
  require_found(q, "squeue");
  if (q.exit_code == 0) {
    std::istringstream in(q.out);
    std::string line;
    while (std::getline(in, line)) {
      const auto f = split(trim(line), '|');
      if (f.size() < 5 || !index.count(f[0])) continue;
      if (!same_path(f[4], script)) continue;
      SlurmJobState& s = states[index[f[0]]];
      s.state = f[1];
      s.reason = f[2] == "None" ? "" : f[2];
      s.elapsed = f[3];
      s.source = "squeue";
    }
  }
  // 2. scontrol: the exit code of ended jobs (and jobs squeue did not list).
  for (auto& s : states) {
    if (s.source == "squeue" && slurm_state_active(s.state)) continue;
    const CommandOutput c = run({"scontrol", "--oneliner", "show", "job", s.id});
    if (!c.found || c.exit_code != 0) continue;
    const auto kv = parse_scontrol(c.out);
    if (!kv.count("JobState")) continue;
    if (kv.count("Command") && !same_path(kv.at("Command"), script)) continue;
    s.state = kv.at("JobState");
    if (kv.count("Reason") && kv.at("Reason") != "None") s.reason = kv.at("Reason");
    if (kv.count("ExitCode")) s.exit_code = kv.at("ExitCode");
    if (kv.count("RunTime")) s.elapsed = kv.at("RunTime");
    s.source = "scontrol";
  }
  // 3. sacct, for jobs the controller has forgotten (only with accounting storage).
  std::vector<std::string> forgotten;
  for (const auto& s : states)
    if (s.source == "none") forgotten.push_back(s.id);
  if (!forgotten.empty()) {
    const CommandOutput a = run({"sacct", "--noheader", "--parsable2", "--allocations", "--jobs=" + join_ids(forgotten),
                                 "--format=JobID,State,ExitCode,Elapsed"});
    if (a.found && a.exit_code == 0) {
      std::istringstream in(a.out);
      std::string line;
      while (std::getline(in, line)) {
        const auto f = split(trim(line), '|');
        if (f.size() < 4 || !index.count(f[0])) continue;
        SlurmJobState& s = states[index[f[0]]];
        if (s.source != "none") continue;
        s.state = base_state(f[1]);
        s.exit_code = f[2];
        s.elapsed = f[3];
        s.source = "sacct";
      }
    }
  }
  // 4. The job's own record of flexnas search's exit code.
  for (auto& s : states) {
    s.search_exit = read_exit_file(campaign_dir, s.id);
    if (s.source == "none" && s.search_exit >= 0) s.source = "exit file";
  }
  return states;
}

std::vector<SlurmJobState> active_jobs(const std::string& campaign_dir, const CommandRunner& run) {
  std::vector<SlurmJobState> active;
  for (const auto& s : query_jobs(campaign_dir, read_job_records(campaign_dir), run))
    if (slurm_state_active(s.state)) active.push_back(s);
  return active;
}

// ---------------------------------------------------------------------------------------------
// Commands

SubmitResult submit_campaign(const SlurmJobSpec& spec, int64_t chain, bool dry_run, const CommandRunner& run) {
  SubmitResult result;
  result.script_path = sbatch_script_path(spec.campaign_dir);
  result.commands = sbatch_commands(result.script_path, chain);

  if (!dry_run) {
    const CommandOutput version = run({"sbatch", "--version"});
    require_found(version, "sbatch");
    // The campaign is locked while a job recorded for it is queued or running.
    const auto active = active_jobs(spec.campaign_dir, run);
    if (!active.empty()) {
      std::string list;
      for (const auto& s : active) list += (list.empty() ? "" : ", ") + s.id + " (" + base_state(s.state) + ")";
      throw Error("the campaign in " + spec.campaign_dir + " is locked by SLURM job(s) " + list +
                  " already queued or running for it; wait for them (flexnas slurm status " + spec.campaign_dir +
                  ") or cancel them (flexnas slurm cancel " + spec.campaign_dir + ") before submitting again");
    }
  }

  fs::create_directories(slurm_dir(spec.campaign_dir));
  write_file_atomic(result.script_path, sbatch_script(spec));
  fs::permissions(result.script_path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
  if (dry_run) return result;

  // The user asks for the campaign to run: a finished marker of an earlier run (e.g. before the
  // budget was raised) must not stop the new jobs. `flexnas search` itself knows when it is done.
  std::error_code ec;
  fs::remove(slurm_finished_path(spec.campaign_dir), ec);

  std::vector<SlurmJobRecord> records = read_job_records(spec.campaign_dir);
  int64_t submission = 1;
  for (const auto& r : records) submission = std::max(submission, r.submission + 1);
  static const std::regex job_id("^[0-9]+(_[0-9]+)?$");
  std::string previous;
  for (size_t i = 0; i < result.commands.size(); ++i) {
    std::vector<std::string> argv = result.commands[i];
    for (auto& a : argv)
      if (a == "--dependency=afterany:{prev}") a = "--dependency=afterany:" + previous;
    const CommandOutput out = run(argv);
    require_found(out, "sbatch");
    const std::string what = i == 0 ? "the job" : "follow-on job " + std::to_string(i) + " of " +
                                                      std::to_string(chain) + " (after job " + previous + ")";
    if (out.exit_code != 0) {
      std::string message = trim(out.err.empty() ? out.out : out.err);
      std::string already = result.job_ids.empty() ? "" : " (already queued and recorded: " + join_ids(result.job_ids, ", ") + ")";
      if (message.find("Could not establish a configuration source") != std::string::npos ||
          message.find("Unable to contact slurm controller") != std::string::npos)
        message += "\n(sbatch found no reachable SLURM controller: on a cluster, run this on a login node; for the "
                   "local test cluster, run scripts/slurm-local.sh start and export the SLURM_CONF it prints)";
      throw ConfigError("error: the cluster rejected " + what + already + "; sbatch said:\n" + message);
    }
    // --parsable prints "<id>" or "<id>;<cluster>".
    std::string id = trim(out.out);
    id = id.substr(0, id.find('\n'));
    id = id.substr(0, id.find(';'));
    if (!std::regex_match(id, job_id))
      throw Error("sbatch --parsable printed '" + trim(out.out) + "', which is not a job id");
    SlurmJobRecord r;
    r.id = id;
    r.submission = submission;
    r.submitted = now_iso8601();
    r.dependency = previous.empty() ? "" : "afterany:" + previous;
    records.push_back(r);
    write_job_records(spec.campaign_dir, records);  // recorded at once: a later failure keeps it
    result.job_ids.push_back(id);
    previous = id;
  }
  return result;
}

std::vector<SlurmJobState> print_status(const std::string& campaign_dir, const CommandRunner& run, std::ostream& out) {
  const auto records = read_job_records(campaign_dir);
  if (records.empty())
    throw ConfigError("error: " + campaign_dir + ": no SLURM jobs recorded (" + slurm_jobs_path(campaign_dir) +
                      " is missing or empty); submit with `flexnas slurm submit campaign.yaml`");
  const auto states = query_jobs(campaign_dir, records, run);
  const bool finished = fs::exists(slurm_finished_path(campaign_dir));
  out << "campaign: " << campaign_dir << "\n"
      << "script:   " << sbatch_script_path(campaign_dir) << "\n";
  out << std::left << std::setw(12) << "JOB" << std::setw(22) << "SUBMITTED" << std::setw(15) << "STATE" << std::setw(8)
      << "EXIT" << std::setw(12) << "ELAPSED" << "SOURCE\n";
  for (size_t i = 0; i < states.size(); ++i) {
    const auto& s = states[i];
    std::string exit = s.exit_code;
    if (exit.empty() && s.search_exit >= 0) exit = std::to_string(s.search_exit);
    out << std::left << std::setw(12) << s.id << std::setw(22) << records[i].submitted << std::setw(15)
        << base_state(s.state) << std::setw(8) << (exit.empty() ? "-" : exit) << std::setw(12)
        << (s.elapsed.empty() ? "-" : s.elapsed) << s.source << "\n";
    if (finished && base_state(s.state) == "CANCELLED" && s.search_exit < 0)
      out << "    not needed: the campaign finished before this job started (the chain cancels its remaining jobs)\n";
    else
      out << "    " << explain_slurm_state(s) << "\n";
  }
  if (finished)
    out << "campaign finished (" << slurm_finished_path(campaign_dir) << ")\n";
  out << "output: " << slurm_dir(campaign_dir) << "/job-<id>.out and .err; progress: flexnas status " << campaign_dir
      << "\n";
  return states;
}

std::vector<std::string> cancel_jobs(const std::string& campaign_dir, bool pending_only, const CommandRunner& run,
                                     std::ostream& out) {
  const auto records = read_job_records(campaign_dir);
  std::vector<std::string> ids;
  std::string list;
  for (const auto& s : query_jobs(campaign_dir, records, run)) {
    if (!slurm_state_active(s.state)) continue;
    if (pending_only && base_state(s.state) != "PENDING") continue;
    ids.push_back(s.id);
    list += (list.empty() ? "" : ", ") + s.id + " (" + base_state(s.state) + ")";
  }
  if (ids.empty()) {
    out << "flexnas slurm cancel: no " << (pending_only ? "pending" : "queued or running") << " job recorded for "
        << campaign_dir << "\n";
    return ids;
  }
  std::vector<std::string> argv = {"scancel"};
  argv.insert(argv.end(), ids.begin(), ids.end());
  const CommandOutput c = run(argv);
  require_found(c, "scancel");
  if (c.exit_code != 0)
    throw Error("scancel " + join_ids(ids, " ") + " failed: " + trim(c.err.empty() ? c.out : c.err));
  out << "flexnas slurm cancel: cancelled " << list << "\n";
  return ids;
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
