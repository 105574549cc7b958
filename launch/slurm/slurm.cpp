// SLURM submission, status and cancellation for search campaigns (see slurm.h).
#include "launch/slurm/slurm.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdlib>
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

namespace fs = std::filesystem;

namespace flexnas::launch {
namespace {

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

std::string now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
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

}  // namespace flexnas::launch
