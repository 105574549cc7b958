// flexnas slurm without a cluster: time limits and flag validation (messages in full), the exact
// #SBATCH lines, the job script's own logic run under bash with a fake srun and a fake flexnas
// (signal forwarding, exit files, the finished marker, stopping the chain), the chain of sbatch
// calls against a fake cluster, locking, state queries and explanations.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "design_space/atomic_file.h"
#include "design_space/error.h"
#include "launch/slurm/slurm.h"

namespace fs = std::filesystem;
using namespace flexnas;
using namespace flexnas::launch;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return std::string("ConfigError: ") + e.what();
  } catch (const Error& e) {
    return std::string("Error: ") + e.what();
  }
  return "no error";
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("flexnas-slurm-unit-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

void write_text(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream(path) << text;
  if (executable) fs::permissions(path, fs::perms::owner_all, fs::perm_options::add);
}

/// A valid campaign file (command evaluator) whose directory is <dir>/camp.
std::string write_campaign(const TempDir& dir, const std::string& extra = "") {
  const std::string path = dir / "campaign.yaml";
  write_text(path, "name: camp\n"
                   "design_space: " FLEXNAS_SOURCE_DIR "/examples/design_space_test.yaml\n"
                   "objective: {metric: score}\n"
                   "policy: {name: random}\n"
                   "budget: {trials: 4}\n"
                   "evaluator: {type: command, argv: [/bin/true]}\n" +
                       extra);
  return path;
}

SlurmJobSpec example_spec(const std::string& campaign_dir) {
  SlurmJobSpec spec;
  spec.job_name = "flexnas-gpu-search";
  spec.campaign_file = "/home/me/gpu-search.yaml";
  spec.campaign_dir = campaign_dir;
  spec.flexnas = "/opt/flexnas/bin/flexnas";
  spec.resources.nodes = 2;
  spec.resources.ntasks_per_node = 4;
  spec.resources.gpus_per_task = 1;
  spec.resources.cpus_per_task = 8;
  spec.resources.mem = "64G";
  spec.resources.time = "1-00:00:00";
  spec.resources.partition = "gpu";
  spec.resources.account = "nas-lab";
  spec.resources.qos = "long";
  spec.setup_file = "/home/me/setup.sh";
  spec.setup_text = "module load cuda/11.7\nexport OMP_NUM_THREADS=8\n";
  spec.signal_lead = 600;
  spec.mpi = "pmix";
  return spec;
}

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

/// A scripted cluster: each program's handler answers; every call is logged.
struct FakeCluster {
  std::vector<std::vector<std::string>> calls;
  std::map<std::string, std::function<CommandOutput(const std::vector<std::string>&)>> programs;

  CommandRunner runner() {
    return [this](const std::vector<std::string>& argv) {
      calls.push_back(argv);
      auto it = programs.find(argv[0]);
      if (it == programs.end()) return CommandOutput{false, 127, "", argv[0] + ": not found"};
      return it->second(argv);
    };
  }
  std::vector<std::vector<std::string>> calls_of(const std::string& program) const {
    std::vector<std::vector<std::string>> out;
    for (const auto& c : calls)
      if (c[0] == program) out.push_back(c);
    return out;
  }
};

CommandOutput ok(const std::string& out) { return CommandOutput{true, 0, out, ""}; }

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(SlurmTime, AcceptsEverySlurmForm) {
  EXPECT_EQ(parse_slurm_time("24:00:00"), 86400);
  EXPECT_EQ(parse_slurm_time("00:01:00"), 60);
  EXPECT_EQ(parse_slurm_time("90"), 5400);
  EXPECT_EQ(parse_slurm_time("1:30"), 90);
  EXPECT_EQ(parse_slurm_time("2-00:00:00"), 172800);
  EXPECT_EQ(parse_slurm_time("1-12"), 129600);
  EXPECT_EQ(parse_slurm_time("1-02:30"), 95400);
  EXPECT_EQ(format_slurm_time(86400), "24:00:00");
  EXPECT_EQ(format_slurm_time(60), "00:01:00");
  EXPECT_EQ(format_slurm_time(90061), "1-01:01:01");
}

TEST(SlurmTime, RejectsWithMessagesNamingTheFlag) {
  const std::string allowed =
      "expected a SLURM time limit: HH:MM:SS, MM:SS, minutes, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 24:00:00, 2-00:00:00)";
  EXPECT_EQ(message_of([] { parse_slurm_time("two hours"); }),
            "ConfigError: error: --time: 'two hours' is not a time limit; " + allowed);
  EXPECT_EQ(message_of([] { parse_slurm_time("1:75:00"); }),
            "ConfigError: error: --time: '1:75:00': minutes must be below 60; " + allowed);
  EXPECT_EQ(message_of([] { parse_slurm_time("00:00:30"); }),
            "ConfigError: error: --time: '00:00:30' is shorter than SLURM's minimum time limit of 1 minute (00:01:00); "
            "leave --time out to get the partition's default limit");
  EXPECT_EQ(message_of([] { parse_slurm_time("0"); }).substr(0, 40), "ConfigError: error: --time: '0' is short");
}

TEST(SlurmFlags, ResourceValidationMessages) {
  SlurmResources r;
  EXPECT_EQ(message_of([&] { validate_resources(r); }), "no error");
  r.nodes = 0;
  EXPECT_EQ(message_of([&] { validate_resources(r); }), "ConfigError: error: --nodes: expected a whole number >= 1, got 0");
  r = SlurmResources{};
  r.mem = "16GB";
  EXPECT_EQ(message_of([&] { validate_resources(r); }),
            "ConfigError: error: --mem: '16GB' is not a memory size; expected a positive whole number with an optional "
            "unit K, M, G or T (megabytes when none), e.g. 16G or 64000M");
  r = SlurmResources{};
  r.partition = "gpu part";
  EXPECT_EQ(message_of([&] { validate_resources(r); }),
            "ConfigError: error: --partition: 'gpu part' is not a partition name; expected letters, digits, '_', '.', "
            "'-' (several partitions separated by commas)");
  r.partition = "gpu,gpu-long";
  EXPECT_EQ(message_of([&] { validate_resources(r); }), "no error");
  r.qos = "a;rm -rf";
  EXPECT_EQ(message_of([&] { validate_resources(r); }),
            "ConfigError: error: --qos: 'a;rm -rf' is not a QOS name; expected letters, digits, '_', '.', '-'");
  r = SlurmResources{};
  r.time = "soon";
  EXPECT_NE(message_of([&] { validate_resources(r); }).find("error: --time: 'soon' is not a time limit"), std::string::npos);
}

TEST(SlurmFlags, SubmitOptionsAreCheckedBeforeTheCampaignIsRead) {
  SlurmSubmitOptions o;
  o.campaign = "/nonexistent/campaign.yaml";
  o.chain = -1;
  EXPECT_EQ(message_of([&] { make_job_spec(o); }), "ConfigError: error: --chain: expected a whole number in 0..1000, got -1");
  o.chain = 0;
  o.launcher = Launcher::kMpirun;
  o.mpi = "pmix";
  EXPECT_EQ(message_of([&] { make_job_spec(o); }), "ConfigError: error: --mpi: only applies to --launcher srun");
}

TEST(SlurmFlags, SignalLeadMustBeShorterThanTheTimeLimit) {
  TempDir dir;
  SlurmSubmitOptions o;
  o.campaign = write_campaign(dir, "scheduler: {drain_timeout: 40}\n");
  o.flexnas = "/bin/true";
  o.resources.time = "00:01:00";
  o.signal_lead = 60;
  EXPECT_EQ(message_of([&] { make_job_spec(o); }),
            "ConfigError: error: --signal-lead: 60 s is not shorter than the time limit --time 00:01:00 (60 s): the "
            "campaign would be told to stop as soon as it starts; give a longer --time or a shorter --signal-lead");
  o.signal_lead = 0;  // default: drain_timeout 40 + 30 = 70 s
  EXPECT_EQ(message_of([&] { make_job_spec(o); }),
            "ConfigError: error: --signal-lead: 70 s (the default: drain_timeout + 30 s) is not shorter than the time "
            "limit --time 00:01:00 (60 s): the campaign would be told to stop as soon as it starts; give a longer "
            "--time or a shorter --signal-lead");
  o.resources.time = "2:00";  // M:S = 2 minutes
  testing::internal::CaptureStderr();
  const SlurmJobSpec spec = make_job_spec(o);
  // 120 s < 70 s + 60 s: SLURM may signal the job at once.
  EXPECT_NE(testing::internal::GetCapturedStderr().find(
                "--time 2:00 (120 s) is less than --signal-lead (70 s) + 60 s: SLURM may send USR1 up to 60 s early"),
            std::string::npos);
  EXPECT_EQ(spec.signal_lead, 70);
  o.resources.time = "3:00";
  testing::internal::CaptureStderr();
  make_job_spec(o);
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("up to 60 s early"), std::string::npos);
  EXPECT_EQ(spec.campaign_dir, dir / "camp");
  EXPECT_EQ(spec.campaign_file, dir / "campaign.yaml");
  EXPECT_EQ(spec.job_name, "flexnas-camp");
  EXPECT_EQ(spec.flexnas, "/bin/true");
}

TEST(SlurmFlags, BadCampaignAndSetupFiles) {
  TempDir dir;
  SlurmSubmitOptions o;
  o.campaign = write_campaign(dir, "budget_typo: 3\n");
  const std::string m = message_of([&] { make_job_spec(o); });
  EXPECT_NE(m.find(dir / "campaign.yaml:7:1: error:"), std::string::npos) << m;
  EXPECT_NE(m.find("budget_typo"), std::string::npos) << m;
  o.campaign = write_campaign(dir);
  o.flexnas = "/bin/true";
  o.setup = dir / "missing-setup.sh";
  EXPECT_EQ(message_of([&] { make_job_spec(o); }), "ConfigError: error: --setup: file not found: " + (dir / "missing-setup.sh"));
  o.setup = "";
  o.flexnas = dir / "no-such-flexnas";
  EXPECT_EQ(message_of([&] { make_job_spec(o); }),
            "ConfigError: error: --flexnas: '" + (dir / "no-such-flexnas") + "' is not an executable file");
}

// ---------------------------------------------------------------------------------------------

TEST(SlurmScript, ExactSbatchLines) {
  const std::string script = sbatch_script(example_spec("/scratch/me/gpu-search"));
  EXPECT_EQ(script.rfind("#!/bin/bash\n", 0), 0u);
  const std::vector<std::string> expected = {
      "#SBATCH --job-name=flexnas-gpu-search",
      "#SBATCH --nodes=2",
      "#SBATCH --ntasks-per-node=4",
      "#SBATCH --cpus-per-task=8",
      "#SBATCH --gpus-per-task=1",
      "#SBATCH --mem=64G",
      "#SBATCH --time=24:00:00",
      "#SBATCH --partition=gpu",
      "#SBATCH --account=nas-lab",
      "#SBATCH --qos=long",
      "#SBATCH --signal=B:USR1@600",
      "#SBATCH --output=/scratch/me/gpu-search/slurm/job-%j.out",
      "#SBATCH --error=/scratch/me/gpu-search/slurm/job-%j.err",
  };
  EXPECT_EQ(lines_starting(script, "#SBATCH"), expected);
  EXPECT_EQ(lines_starting(script, "srun"),
            std::vector<std::string>{"srun --nodes=2 --ntasks=8 --ntasks-per-node=4 --cpus-per-task=8 --gpus-per-task=1 --mpi=pmix \\"});
  EXPECT_NE(script.find("# Environment set-up, from /home/me/setup.sh:\nmodule load cuda/11.7\nexport OMP_NUM_THREADS=8\n"
                        "# (end of set-up)\n"),
            std::string::npos);
  EXPECT_NE(script.find("FLEXNAS=/opt/flexnas/bin/flexnas\nCAMPAIGN=/home/me/gpu-search.yaml\n"), std::string::npos);
  EXPECT_NE(script.find("trap 'on_signal USR1 10' USR1\n"), std::string::npos);
  // The trap comes first (a signal can arrive as soon as the job starts), the set-up after it.
  EXPECT_LT(script.find("trap 'on_signal USR1 10' USR1\n"), script.find("# Environment set-up"));
  EXPECT_LT(script.find("trap 'on_signal USR1 10' USR1\n"), script.find("if [ -e \"$SLURM_DIR/finished\" ]"));
}

TEST(SlurmScript, DefaultsLeaveClusterDefaultsAndMpirunVariant) {
  SlurmJobSpec spec;
  spec.job_name = "flexnas-x";
  spec.campaign_file = "/c/x.yaml";
  spec.campaign_dir = "/c/my campaign";
  spec.flexnas = "/bin/flexnas";
  spec.signal_lead = 60;
  std::string script = sbatch_script(spec);
  const std::vector<std::string> expected = {
      "#SBATCH --job-name=flexnas-x",
      "#SBATCH --nodes=1",
      "#SBATCH --ntasks-per-node=1",
      "#SBATCH --signal=B:USR1@60",
      "#SBATCH --output=/c/my campaign/slurm/job-%j.out",
      "#SBATCH --error=/c/my campaign/slurm/job-%j.err",
  };
  EXPECT_EQ(lines_starting(script, "#SBATCH"), expected);
  EXPECT_NE(script.find("CAMPAIGN_DIR='/c/my campaign'\n"), std::string::npos);  // quoted for the shell
  EXPECT_EQ(script.find("Environment set-up"), std::string::npos);
  spec.launcher = Launcher::kMpirun;
  spec.resources.nodes = 3;
  spec.resources.ntasks_per_node = 2;
  script = sbatch_script(spec);
  EXPECT_EQ(lines_starting(script, "mpirun"),
            std::vector<std::string>{"mpirun -np 6 --map-by ppr:2:node -x FLEXNAS_DRAIN_FILE -x FLEXNAS_FINISHED_FILE \\"});
  EXPECT_TRUE(lines_starting(script, "srun").empty());
}

/// Runs the generated script under bash with a fake srun (runs its command) and a fake flexnas.
class ScriptRun : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = dir_ / "bin";
    fs::create_directories(bin_);
    campaign_dir_ = dir_ / "camp";
    fs::create_directories(campaign_dir_ + "/slurm");
    // srun: drop the options, run the program (exec keeps the PID, so a signal reaches it). With
    // SRUN_SWALLOW it first spends 0.5 s "creating the step" and swallows USR1 meanwhile, as the
    // real srun does.
    write_text(bin_ + "/srun",
               "#!/bin/bash\n"
               "while [[ \"$1\" == --* ]]; do shift; done\n"
               "if [ -n \"${SRUN_SWALLOW:-}\" ]; then\n"
               "  trap 'echo swallowed >>" + (dir_ / "calls.log") + "' USR1\n"
               "  touch " + (dir_ / "srun-starting") + "\n"
               "  for i in $(seq 10); do sleep 0.05; done\n"
               "  trap - USR1\n"
               "fi\n"
               "exec \"$@\"\n",
               true);
    // flexnas: `search` records its arguments and runs until done (MODE=finish: writes the finished
    // file, as `flexnas search` does; MODE=vanish: exits 0 without it) or until USR1 or the drain
    // file (then drains for 0.3 s and exits 138); `slurm cancel` records that the chain was stopped.
    write_text(dir_ / "flexnas",
               "#!/bin/bash\n"
               "log=" + (dir_ / "calls.log") + "\n"
               "echo \"$*\" >>\"$log\"\n"
               "if [ \"$1\" = slurm ]; then exit 0; fi\n"
               "trap 'echo drained >>\"$log\"; sleep 0.3; exit 138' USR1\n"
               "if [ \"$MODE\" = finish ]; then echo 'done 4' >\"$FLEXNAS_FINISHED_FILE\"; exit 0; fi\n"
               "if [ \"$MODE\" = vanish ]; then exit 0; fi\n"
               "if [ \"$MODE\" = config ]; then exit 2; fi\n"
               "touch " + (dir_ / "started") + "\n"
               "for i in $(seq 1 200); do\n"
               "  if [ -e \"$FLEXNAS_DRAIN_FILE\" ]; then echo \"drained (file: $(cat \"$FLEXNAS_DRAIN_FILE\"))\" >>\"$log\"; exit 138; fi\n"
               "  sleep 0.05\n"
               "done\n"
               "exit 0\n",
               true);
    script_ = dir_ / "job.sbatch";
    write_script("");
  }
  void write_script(const std::string& setup_text) {
    SlurmJobSpec spec;
    spec.job_name = "flexnas-camp";
    spec.campaign_file = dir_ / "campaign.yaml";
    spec.campaign_dir = campaign_dir_;
    spec.flexnas = dir_ / "flexnas";
    spec.signal_lead = 60;
    spec.setup_file = "setup.sh";
    spec.setup_text = setup_text;
    write_text(script_, sbatch_script(spec), true);
  }
  void wait_for(const std::string& path) const {
    for (int i = 0; i < 250 && !fs::exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(path)) << path;
  }

  /// Starts the script; returns its PID.
  pid_t start(const std::string& mode, bool srun_swallows = false) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("PATH", (bin_ + ":/usr/bin:/bin").c_str(), 1);
      setenv("SLURM_JOB_ID", "42", 1);
      setenv("MODE", mode.c_str(), 1);
      if (srun_swallows) setenv("SRUN_SWALLOW", "1", 1);
      unsetenv("FLEXNAS_DRAIN_FILE");
      unsetenv("FLEXNAS_FINISHED_FILE");
      const std::string out = dir_ / "job.out";
      if (!freopen(out.c_str(), "w", stdout)) _exit(126);
      execl("/bin/bash", "bash", script_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }
  static int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string calls() const { return fs::exists(dir_ / "calls.log") ? read_file(dir_ / "calls.log") : ""; }
  std::string exit_file() const { return read_file(campaign_dir_ + "/slurm/job-42.exit"); }

  TempDir dir_;
  std::string bin_, campaign_dir_, script_;
};

TEST_F(ScriptRun, UsrOneIsForwardedAndTheDrainExitIsKept) {
  const pid_t pid = start("run");
  for (int i = 0; i < 200 && !fs::exists(dir_ / "started"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(dir_ / "started"));
  kill(pid, SIGUSR1);  // what SLURM does with --signal=B:USR1@lead
  EXPECT_EQ(wait_exit(pid), 138);
  EXPECT_EQ(exit_file(), "138\n");
  EXPECT_EQ(calls(), "search " + (dir_ / "campaign.yaml") + "\ndrained\n");  // fresh campaign: no --resume
  EXPECT_FALSE(fs::exists(campaign_dir_ + "/slurm/finished"));
  EXPECT_NE(read_file(dir_ / "job.out").find("drained on signal 10 (exit 138)"), std::string::npos);
}

TEST_F(ScriptRun, UsrOneBeforeTheStepExistsIsNotLost) {
  // The signal comes during the set-up lines, before srun starts: nothing to forward it to, so
  // only the drain file carries it to flexnas, which drains at once.
  write_script("touch " + (dir_ / "setup-started") + "\nfor i in $(seq 10); do sleep 0.05; done\n");
  const pid_t pid = start("run");
  wait_for(dir_ / "setup-started");
  kill(pid, SIGUSR1);
  EXPECT_EQ(wait_exit(pid), 138);
  EXPECT_EQ(exit_file(), "138\n");
  EXPECT_EQ(calls(), "search " + (dir_ / "campaign.yaml") + "\ndrained (file: 10)\n");
  EXPECT_EQ(read_file(campaign_dir_ + "/slurm/job-42.drain"), "10\n");
  EXPECT_FALSE(fs::exists(campaign_dir_ + "/slurm/finished"));
}

TEST_F(ScriptRun, UsrOneSwallowedBySrunStillDrains) {
  const pid_t pid = start("run", /*srun_swallows=*/true);
  wait_for(dir_ / "srun-starting");
  kill(pid, SIGUSR1);  // forwarded to srun, which swallows it
  EXPECT_EQ(wait_exit(pid), 138);
  EXPECT_EQ(calls(), "swallowed\nsearch " + (dir_ / "campaign.yaml") + "\ndrained (file: 10)\n");
  EXPECT_EQ(exit_file(), "138\n");
}

TEST_F(ScriptRun, FinishedCampaignMarksAndStopsTheChain) {
  write_text(campaign_dir_ + "/campaign.db", "");  // an existing campaign is resumed
  write_text(campaign_dir_ + "/slurm/job-42.drain", "10\n");  // left by an earlier job with this id
  EXPECT_EQ(wait_exit(start("finish")), 0);
  EXPECT_EQ(exit_file(), "0\n");
  EXPECT_TRUE(fs::exists(campaign_dir_ + "/slurm/finished"));
  EXPECT_EQ(calls(), "search " + (dir_ / "campaign.yaml") + " --resume\nslurm cancel " + campaign_dir_ + " --pending-only\n");
  EXPECT_NE(read_file(dir_ / "job.out").find("the campaign is finished: done 4"), std::string::npos);
}

TEST_F(ScriptRun, StepEndingWithZeroWithoutFinishingLetsTheChainResume) {
  // srun can exit 0 without having run flexnas: no finished file, so no finished marker and the
  // chain goes on.
  EXPECT_EQ(wait_exit(start("vanish")), kSlurmStepUnconfirmedExit);
  EXPECT_EQ(exit_file(), std::to_string(kSlurmStepUnconfirmedExit) + "\n");
  EXPECT_FALSE(fs::exists(campaign_dir_ + "/slurm/finished"));
  EXPECT_EQ(calls(), "search " + (dir_ / "campaign.yaml") + "\n");  // the chain is not cancelled
  EXPECT_NE(read_file(dir_ / "job.out").find("did not report the campaign finished (exit 75)"), std::string::npos);
}

TEST_F(ScriptRun, FollowOnAfterTheFinishExitsAtOnce) {
  write_text(campaign_dir_ + "/slurm/finished", "2026-01-01T00:00:00Z\n");
  EXPECT_EQ(wait_exit(start("run")), 0);
  EXPECT_EQ(calls(), "slurm cancel " + campaign_dir_ + " --pending-only\n");  // no search at all
  EXPECT_EQ(exit_file(), "0\n");
}

TEST_F(ScriptRun, BadConfigurationStopsTheChain) {
  EXPECT_EQ(wait_exit(start("config")), 2);
  EXPECT_EQ(exit_file(), "2\n");
  EXPECT_FALSE(fs::exists(campaign_dir_ + "/slurm/finished"));
  EXPECT_NE(calls().find("slurm cancel " + campaign_dir_ + " --pending-only\n"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------

TEST(SlurmSubmit, ChainOfDependentJobsIsRecorded) {
  TempDir dir;
  SlurmJobSpec spec = example_spec(dir / "camp");
  FakeCluster cluster;
  int next_id = 100;
  cluster.programs["sbatch"] = [&](const std::vector<std::string>& argv) {
    if (argv[1] == "--version") return ok("slurm 22.05.8\n");
    return ok(std::to_string(next_id++) + ";cluster-a\n");
  };
  cluster.programs["squeue"] = [](const std::vector<std::string>&) { return ok(""); };
  cluster.programs["scontrol"] = [](const std::vector<std::string>&) { return CommandOutput{true, 1, "", "Invalid job id"}; };
  const SubmitResult r = submit_campaign(spec, 2, false, cluster.runner());
  EXPECT_EQ(r.job_ids, (std::vector<std::string>{"100", "101", "102"}));
  const std::string script = sbatch_script_path(dir / "camp");
  const auto sb = cluster.calls_of("sbatch");
  ASSERT_EQ(sb.size(), 4u);
  EXPECT_EQ(sb[1], (std::vector<std::string>{"sbatch", "--parsable", script}));
  EXPECT_EQ(sb[2], (std::vector<std::string>{"sbatch", "--parsable", "--dependency=afterany:100", script}));
  EXPECT_EQ(sb[3], (std::vector<std::string>{"sbatch", "--parsable", "--dependency=afterany:101", script}));
  EXPECT_EQ(read_file(script), sbatch_script(spec));
  const auto records = read_job_records(dir / "camp");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].dependency, "");
  EXPECT_EQ(records[2].dependency, "afterany:101");
  EXPECT_EQ(records[2].submission, 1);

  // A second submission appends to the record with the next submission number.
  submit_campaign(spec, 0, false, cluster.runner());
  const auto again = read_job_records(dir / "camp");
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[3].id, "103");
  EXPECT_EQ(again[3].submission, 2);
}

TEST(SlurmSubmit, DryRunWritesTheScriptOnly) {
  TempDir dir;
  FakeCluster cluster;
  const SubmitResult r = submit_campaign(example_spec(dir / "camp"), 1, true, cluster.runner());
  EXPECT_TRUE(cluster.calls.empty());
  EXPECT_TRUE(r.job_ids.empty());
  EXPECT_TRUE(fs::exists(r.script_path));
  ASSERT_EQ(r.commands.size(), 2u);
  EXPECT_EQ(r.commands[1][2], "--dependency=afterany:{prev}");
  EXPECT_FALSE(fs::exists(slurm_jobs_path(dir / "camp")));
}

TEST(SlurmSubmit, MissingSbatchSaysWhatToInstall) {
  TempDir dir;
  FakeCluster cluster;  // no programs at all
  const std::string m = message_of([&] { submit_campaign(example_spec(dir / "camp"), 0, false, cluster.runner()); });
  EXPECT_EQ(m.rfind("Error: sbatch not found on PATH: flexnas needs SLURM's client commands", 0), 0u) << m;
  EXPECT_NE(m.find("install the package slurm-client"), std::string::npos) << m;
}

TEST(SlurmSubmit, RejectionShowsSbatchsMessageAndKeepsEarlierJobs) {
  TempDir dir;
  FakeCluster cluster;
  int submitted = 0;
  cluster.programs["sbatch"] = [&](const std::vector<std::string>& argv) {
    if (argv[1] == "--version") return ok("slurm 22.05.8\n");
    if (submitted++ == 0) return ok("7\n");
    return CommandOutput{true, 1, "", "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy\n"};
  };
  cluster.programs["squeue"] = [](const std::vector<std::string>&) { return ok(""); };
  const std::string m = message_of([&] { submit_campaign(example_spec(dir / "camp"), 3, false, cluster.runner()); });
  EXPECT_EQ(m, "ConfigError: error: the cluster rejected follow-on job 1 of 3 (after job 7) (already queued and recorded: 7); "
               "sbatch said:\nsbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job "
               "violates accounting/QOS policy");
  const auto records = read_job_records(dir / "camp");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id, "7");
}

TEST(SlurmSubmit, LockedByARecordedRunningJob) {
  TempDir dir;
  const std::string camp = dir / "camp";
  write_job_records(camp, {{"5", "", "2026-01-01T00:00:00Z", 1}, {"6", "afterany:5", "2026-01-01T00:00:00Z", 1}});
  const std::string script = sbatch_script_path(camp);
  FakeCluster cluster;
  std::string squeue_out = "5|RUNNING|None|1:02|" + script + "\n6|PENDING|Dependency|0:00|" + script + "\n";
  cluster.programs["sbatch"] = [](const std::vector<std::string>&) { return ok("9\n"); };
  cluster.programs["squeue"] = [&](const std::vector<std::string>&) { return ok(squeue_out); };
  cluster.programs["scontrol"] = [](const std::vector<std::string>&) { return CommandOutput{true, 1, "", "Invalid job id"}; };
  EXPECT_EQ(message_of([&] { submit_campaign(example_spec(camp), 0, false, cluster.runner()); }),
            "Error: the campaign in " + camp + " is locked by SLURM job(s) 5 (RUNNING), 6 (PENDING) already queued or "
            "running for it; wait for them (flexnas slurm status " + camp + ") or cancel them (flexnas slurm cancel " +
            camp + ") before submitting again");
  EXPECT_TRUE(cluster.calls_of("sbatch").size() == 1u);  // only --version
  // The same ids used by someone else's jobs (a re-created cluster) do not lock the campaign.
  squeue_out = "5|RUNNING|None|1:02|/other/job.sh\n";
  EXPECT_EQ(submit_campaign(example_spec(camp), 0, false, cluster.runner()).job_ids, std::vector<std::string>{"9"});
}

// ---------------------------------------------------------------------------------------------

TEST(SlurmStatus, SqueueThenScontrolThenSacctThenExitFile) {
  TempDir dir;
  const std::string camp = dir / "camp";
  write_job_records(camp, {{"10", "", "t", 1}, {"11", "afterany:10", "t", 1}, {"12", "", "t", 2}, {"13", "", "t", 3},
                           {"14", "", "t", 3}});
  const std::string script = sbatch_script_path(camp);
  write_text(slurm_dir(camp) + "/job-10.exit", "138\n");
  write_text(slurm_dir(camp) + "/job-13.exit", "0\n");
  FakeCluster cluster;
  cluster.programs["squeue"] = [&](const std::vector<std::string>& argv) {
    EXPECT_EQ(argv[3], "--jobs=10,11,12,13,14");
    return ok("10|FAILED|NonZeroExitCode|1:01|" + script + "\n11|RUNNING|None|0:20|" + script + "\n");
  };
  cluster.programs["scontrol"] = [&](const std::vector<std::string>& argv) {
    if (argv[4] == "10")
      return ok("JobId=10 JobName=flexnas-camp JobState=FAILED Reason=NonZeroExitCode ExitCode=138:0 RunTime=00:01:01 Command=" +
                script + "\n");
    if (argv[4] == "12")
      return ok("JobId=12 JobName=flexnas-camp JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 RunTime=00:01:05 Command=" +
                script + "\n");
    return CommandOutput{true, 1, "", "slurm_load_jobs error: Invalid job id specified"};
  };
  cluster.programs["sacct"] = [&](const std::vector<std::string>& argv) {
    EXPECT_EQ(argv[4], "--jobs=13,14");
    return ok("14|OUT_OF_MEMORY|0:125|00:10:00\n");
  };
  const auto states = query_jobs(camp, read_job_records(camp), cluster.runner());
  ASSERT_EQ(states.size(), 5u);
  EXPECT_EQ(states[0].state, "FAILED");
  EXPECT_EQ(states[0].exit_code, "138:0");
  EXPECT_EQ(states[0].search_exit, 138);
  EXPECT_EQ(states[0].source, "scontrol");
  EXPECT_EQ(states[1].state, "RUNNING");
  EXPECT_EQ(states[1].source, "squeue");
  EXPECT_EQ(states[2].state, "TIMEOUT");
  EXPECT_EQ(states[3].state, "UNKNOWN");
  EXPECT_EQ(states[3].source, "exit file");
  EXPECT_EQ(states[3].search_exit, 0);
  EXPECT_EQ(states[4].state, "OUT_OF_MEMORY");
  EXPECT_EQ(states[4].source, "sacct");
  // scontrol is not asked about a job squeue shows running.
  for (const auto& c : cluster.calls_of("scontrol")) EXPECT_NE(c[4], "11");

  std::ostringstream out;
  print_status(camp, cluster.runner(), out);
  EXPECT_NE(out.str().find("campaign drained on a signal (flexnas search: exit 138: drained on SIGUSR1"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("raise --signal-lead"), std::string::npos) << out.str();
}

TEST(SlurmStatus, EveryTerminalStateIsExplained) {
  const std::map<std::string, std::string> expected = {
      {"COMPLETED", "the campaign finished"},     {"FAILED", "read the job's .err file"},
      {"TIMEOUT", "raise --signal-lead"},         {"CANCELLED", "cancelled"},
      {"OUT_OF_MEMORY", "raise --mem"},           {"NODE_FAIL", "a node of the job failed"},
      {"PREEMPTED", "preempted by a higher-priority job"}, {"BOOT_FAIL", "failed to boot"},
      {"DEADLINE", "--deadline"},                 {"UNKNOWN", "no longer known to SLURM"},
  };
  for (const auto& [state, phrase] : expected) {
    SlurmJobState s;
    s.state = state;
    EXPECT_NE(explain_slurm_state(s).find(phrase), std::string::npos) << state << ": " << explain_slurm_state(s);
    EXPECT_FALSE(slurm_state_active(state)) << state;
  }
  SlurmJobState cancelled_by;
  cancelled_by.state = "CANCELLED by 0";
  EXPECT_NE(explain_slurm_state(cancelled_by).find("cancelled"), std::string::npos);
  for (const char* state : {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"})
    EXPECT_TRUE(slurm_state_active(state)) << state;
  SlurmJobState dep;
  dep.state = "PENDING";
  dep.reason = "Dependency";
  EXPECT_EQ(explain_slurm_state(dep), "waiting for the previous job of the chain to end");
  EXPECT_EQ(explain_exit_code(138),
            "exit 138: drained on SIGUSR1 before the time limit; completed trials are kept and the next job resumes");
}

TEST(SlurmStatus, NoRecordedJobsIsAClearError) {
  TempDir dir;
  FakeCluster cluster;
  std::ostringstream out;
  EXPECT_EQ(message_of([&] { print_status(dir.str(), cluster.runner(), out); }),
            "ConfigError: error: " + dir.str() + ": no SLURM jobs recorded (" + slurm_jobs_path(dir.str()) +
                " is missing or empty); submit with `flexnas slurm submit campaign.yaml`");
}

TEST(SlurmCancel, PendingOnlyLeavesRunningJobs) {
  TempDir dir;
  const std::string camp = dir / "camp";
  write_job_records(camp, {{"20", "", "t", 1}, {"21", "afterany:20", "t", 1}, {"22", "afterany:21", "t", 1}});
  const std::string script = sbatch_script_path(camp);
  FakeCluster cluster;
  cluster.programs["squeue"] = [&](const std::vector<std::string>&) {
    return ok("20|RUNNING|None|5:00|" + script + "\n21|PENDING|Dependency|0:00|" + script + "\n22|PENDING|Dependency|0:00|" +
              script + "\n");
  };
  cluster.programs["scancel"] = [](const std::vector<std::string>&) { return ok(""); };
  std::ostringstream out;
  EXPECT_EQ(cancel_jobs(camp, true, cluster.runner(), out), (std::vector<std::string>{"21", "22"}));
  EXPECT_EQ(cluster.calls_of("scancel").back(), (std::vector<std::string>{"scancel", "21", "22"}));
  EXPECT_EQ(out.str(), "flexnas slurm cancel: cancelled 21 (PENDING), 22 (PENDING)\n");
  EXPECT_EQ(cancel_jobs(camp, false, cluster.runner(), out), (std::vector<std::string>{"20", "21", "22"}));
}
