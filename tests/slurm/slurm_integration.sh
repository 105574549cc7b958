#!/usr/bin/env bash
# flexnas slurm against a real one-node SLURM (started by the ctest fixture through
# scripts/slurm-local.sh; SLURM_CONF points at it).
#   slurm_integration.sh CASE FLEXNAS WORK_DIR SOURCE_DIR
# Cases:
#   flag_errors       bad flags exit 2 naming the flag; sbatch missing; the cluster rejecting a job
#   status_cancel     status of a running job and its pending follow-on, the lock, cancel
#   drain_chain_fake  a 1-minute job gets USR1 50 s before its limit, the step drains (exit 138),
#                     the chained job finishes the "campaign", the rest of the chain is cancelled
#                     (the job step is a stand-in for `flexnas search` that needs no campaign)
#   campaign_table    a real table-evaluator campaign runs to completion in a job; results in the store
#   drain_chain       a real `command`-evaluator campaign (trials sleep) on 1-minute jobs drains on
#                     USR1, chained jobs resume it, and it completes with its budget honoured and no
#                     completed trial lost
set -euo pipefail
case_name=$1
FLEXNAS=$2
work=$3/$case_name
src=$4
rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() { echo "FAIL ($case_name): $*" >&2; exit 1; }
note() { echo "[$case_name $(date +%T)] $*"; }

# expect_exit CODE PATTERN CMD...: runs CMD, checks its exit code and that its output matches PATTERN.
expect_exit() {
  local code=$1 pattern=$2 out rc
  shift 2
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
  [[ $rc == "$code" ]] || fail "expected exit $code, got $rc from: $* -> $out"
  grep -qzE -- "$pattern" <<<"$out" || fail "output of '$*' does not match '$pattern': $out"
}

# job_ids: the ids `flexnas slurm submit` printed, in order.
job_ids() { grep -oE '(submitted|follow-on) job [0-9]+' | awk '{print $NF}'; }

# job_state ID: SLURM's state of a job ("" when unknown).
job_state() { scontrol --oneliner show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }

# wait_state ID REGEX SECONDS
wait_state() {
  local s
  for ((i = 0; i < $3 * 5; i++)); do
    s=$(job_state "$1")
    [[ "$s" =~ ^($2)$ ]] && return 0
    sleep 0.2
  done
  fail "job $1 did not reach state $2 within $3 s (state '$s'); $(scontrol show job "$1" 2>&1 | head -5)"
}

# wait_gone IDS... : until none of the jobs is queued or running (bounded by the ctest timeout).
wait_ended() {
  local id s
  for id in "$@"; do
    while true; do
      s=$(job_state "$id")
      case "$s" in PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED) sleep 0.5 ;; *) break ;; esac
    done
  done
}

# A campaign file that flexnas accepts; the fake cases never run a real search on it.
write_campaign() {
  cat >"$work/campaign.yaml" <<EOF
name: camp
design_space: $src/examples/design_space_test.yaml
objective: {metric: score}
policy: {name: random}
budget: {trials: 4}
evaluator: {type: command, argv: [/bin/true]}
scheduler: {drain_timeout: 5}
EOF
}

# A stand-in for `flexnas search` (the job step): runs until USR1 (then drains for 1 s and exits
# 138), or finishes at once when the "campaign" was started before; `flexnas slurm ...` is passed on
# to the real binary (the script uses it to stop the chain).
write_fake_flexnas() {
  cat >"$work/fake-flexnas" <<EOF
#!/bin/bash
if [ "\$1" = slurm ]; then exec "$FLEXNAS" "\$@"; fi
echo "fake search \$* (job \$SLURM_JOB_ID)" >>"$work/calls.log"
if [ -e "$work/camp/campaign.db" ]; then
  echo "resumed and finished" >>"$work/calls.log"
  echo "done 4" >"\$FLEXNAS_FINISHED_FILE"  # what flexnas search reports to the batch script
  exit 0
fi
touch "$work/camp/campaign.db"
trap 'echo "drained on USR1 (job \$SLURM_JOB_ID)" >>"$work/calls.log"; sleep 1; exit 138' USR1
# Like flexnas search, it also drains when the batch script noted a signal it could not forward.
for i in \$(seq 1 \$(( ${FAKE_SECONDS:-300} * 5 ))); do
  if [ -e "\$FLEXNAS_DRAIN_FILE" ]; then echo "drained on USR1 (job \$SLURM_JOB_ID, drain file)" >>"$work/calls.log"; exit 138; fi
  sleep 0.2
done
exit 0
EOF
  chmod +x "$work/fake-flexnas"
}

case "$case_name" in
flag_errors)
  write_campaign
  expect_exit 2 "error: --time: '90s' is not a time limit" "$FLEXNAS" slurm submit campaign.yaml --time 90s
  expect_exit 2 "error: --nodes: expected a whole number >= 1, got '0'" "$FLEXNAS" slurm submit campaign.yaml --nodes 0
  expect_exit 2 "error: --cpus-per-task: expected a whole number >= 1, got 'many'" \
    "$FLEXNAS" slurm submit campaign.yaml --cpus-per-task many
  expect_exit 2 "error: --mem: '4 GB' is not a memory size" "$FLEXNAS" slurm submit campaign.yaml --mem "4 GB"
  expect_exit 2 "error: --signal-lead: 120 s is not shorter than the time limit --time 2 \\(120 s\\)" \
    "$FLEXNAS" slurm submit campaign.yaml --time 2 --signal-lead 120
  expect_exit 2 "design_space_test.yaml:[0-9]+:[0-9]+: error: " "$FLEXNAS" slurm submit "$src/examples/design_space_test.yaml"
  # No SLURM clients on PATH.
  expect_exit 1 "sbatch not found on PATH: .*install the package slurm-client" \
    env PATH=/nonexistent "$FLEXNAS" slurm submit campaign.yaml
  # The cluster's own rejection, shown as sbatch printed it.
  expect_exit 2 "the cluster rejected the job; sbatch said:.*[Ii]nvalid partition" \
    "$FLEXNAS" slurm submit campaign.yaml --partition nosuchpartition
  # A dry run writes the script and submits nothing.
  expect_exit 0 "sbatch --parsable --dependency=afterany:\\{prev\\} $work/camp/slurm/job.sbatch" \
    "$FLEXNAS" slurm submit campaign.yaml --chain 1 --dry-run
  grep -q "^#SBATCH --signal=B:USR1@35$" camp/slurm/job.sbatch || fail "default signal lead is not drain_timeout + 30"
  [[ ! -e camp/slurm/jobs.json ]] || fail "a dry run recorded jobs"
  expect_exit 2 "no SLURM jobs recorded" "$FLEXNAS" slurm status camp
  ;;

status_cancel)
  write_campaign
  write_fake_flexnas
  mkdir -p camp
  out=$("$FLEXNAS" slurm submit campaign.yaml --flexnas "$work/fake-flexnas" --chain 1 --time 5 --signal-lead 60)
  echo "$out"
  ids=($(job_ids <<<"$out"))
  [[ ${#ids[@]} == 2 ]] || fail "expected two job ids in: $out"
  wait_state "${ids[0]}" RUNNING 30
  expect_exit 0 "${ids[0]} .*RUNNING" "$FLEXNAS" slurm status camp
  expect_exit 0 "waiting for the previous job of the chain to end" "$FLEXNAS" slurm status campaign.yaml
  # Locked: a second submission while the first job runs is refused.
  expect_exit 1 "is locked by SLURM job\\(s\\) ${ids[0]} \\(RUNNING\\), ${ids[1]} \\(PENDING\\)" \
    "$FLEXNAS" slurm submit campaign.yaml --flexnas "$work/fake-flexnas"
  expect_exit 0 "cancelled ${ids[0]} \\(RUNNING\\), ${ids[1]} \\(PENDING\\)" "$FLEXNAS" slurm cancel camp
  wait_ended "${ids[@]}"
  out=$("$FLEXNAS" slurm status camp)
  echo "$out"
  [[ $(grep -c "CANCELLED" <<<"$out") == 2 ]] || fail "both jobs should be CANCELLED"
  grep -q "cancelled (by \`flexnas slurm cancel\`" <<<"$out" || fail "no explanation of CANCELLED"
  expect_exit 0 "no queued or running job recorded" "$FLEXNAS" slurm cancel camp
  ;;

drain_chain_fake)
  write_campaign
  write_fake_flexnas
  mkdir -p camp
  # 1-minute limit, USR1 50 s before it: the fake search drains long before the limit.
  out=$("$FLEXNAS" slurm submit campaign.yaml --flexnas "$work/fake-flexnas" --time 1 --signal-lead 50 --chain 2)
  echo "$out"
  ids=($(job_ids <<<"$out"))
  [[ ${#ids[@]} == 3 ]] || fail "expected three job ids in: $out"
  wait_ended "${ids[@]}"
  cat calls.log
  out=$("$FLEXNAS" slurm status camp)
  echo "$out"
  [[ $(cat "camp/slurm/job-${ids[0]}.exit") == 138 ]] || fail "the first job did not drain with exit 138"
  [[ $(cat "camp/slurm/job-${ids[1]}.exit") == 0 ]] || fail "the follow-on job did not finish"
  grep -q "drained on USR1 (job ${ids[0]}[,)]" calls.log || fail "USR1 did not reach the job step"
  grep -q "resumed and finished" calls.log || fail "the follow-on job did not resume"
  [[ -e camp/slurm/finished ]] || fail "no finished marker"
  [[ $(job_state "${ids[0]}") == FAILED ]] || fail "job ${ids[0]}: $(job_state "${ids[0]}")"
  [[ $(job_state "${ids[1]}") == COMPLETED ]] || fail "job ${ids[1]}: $(job_state "${ids[1]}")"
  [[ $(job_state "${ids[2]}") == CANCELLED ]] || fail "the rest of the chain was not cancelled: $(job_state "${ids[2]}")"
  grep -q "campaign drained on a signal (flexnas search: exit 138" <<<"$out" || fail "status does not explain the drain"
  grep -q "ended normally: the campaign finished" <<<"$out" || fail "status does not explain the finish"
  grep -q "^campaign finished" <<<"$out" || fail "status does not say the campaign finished"
  ;;

campaign_table)
  cp "$src/tests/slurm/tiny_space.yaml" space.yaml
  count=$("$FLEXNAS" space count -d space.yaml | sed -n 's/^total: \([0-9]*\).*/\1/p')
  [[ "$count" -gt 6 ]] || fail "the tiny space has $count architectures"
  # A NAS-Bench-BERT-style table holding every architecture of the space.
  "$FLEXNAS" space sample -d space.yaml --n "$count" --seed 1 >archs.jsonl
  python3 - "$work/archs.jsonl" >table.json <<'PY'
import json, sys, zlib
ops = {"sa": "SA", "l": "LT", "c": "DSC"}
records = []
for line in open(sys.argv[1]):
    d = json.loads(line)["model_dict"]
    layers = [{"operation_type": ops[d["o"][i]], "operation_parameter": str(d["p"][i]), "num_operation_heads": d["n"][i],
               "feed_forward_dimension": d["f"][i][0], "num_feed_forward": len(d["f"][i])} for i in range(d["l"])]
    score = (zlib.crc32(json.dumps(d, sort_keys=True).encode()) % 1000) / 1000.0
    records.append({"scores": {"score": score},
                    "hparams": {"model_hparam_overrides": {"hidden_size": d["h"][0], "nas_config": {"encoder_layers": layers}}}})
json.dump(records, sys.stdout)
PY
  cat >campaign.yaml <<YAML
name: camp
design_space: space.yaml
objective: {metric: score}
policy: {name: random}
budget: {trials: 6}
seed: 3
evaluator: {type: table, table: table.json}
workers: 1
scheduler: {drain_timeout: 5}
YAML
  out=$("$FLEXNAS" slurm submit campaign.yaml --time 5 --chain 1)
  echo "$out"
  ids=($(job_ids <<<"$out"))
  [[ ${#ids[@]} == 2 ]] || fail "expected two job ids in: $out"
  wait_ended "${ids[@]}"
  out=$("$FLEXNAS" slurm status camp)
  echo "$out"
  cat "camp/slurm/job-${ids[0]}.out" "camp/slurm/job-${ids[0]}.err" || true
  [[ $(job_state "${ids[0]}") == COMPLETED ]] || fail "job ${ids[0]}: $(job_state "${ids[0]}")"
  [[ $(job_state "${ids[1]}") == CANCELLED ]] || fail "the follow-on job was not cancelled: $(job_state "${ids[1]}")"
  grep -q "ended normally: the campaign finished" <<<"$out" || fail "status does not explain COMPLETED"
  grep -q "not needed: the campaign finished before this job started" <<<"$out" || fail "status does not explain the cancelled follow-on"
  [[ -e camp/slurm/finished ]] || fail "no finished marker"
  # The results are in the store: 6 completed trials, each with the table's score.
  [[ $(sqlite3 camp/campaign.db "select count(*) from trials where status='completed'") == 6 ]] ||
    fail "expected 6 completed trials: $(sqlite3 camp/campaign.db 'select id, status, failure_reason from trials')"
  [[ $(sqlite3 camp/campaign.db "select count(*) from trials") == 6 ]] || fail "more trials than the budget"
  python3 - "$work/table.json" "$work/camp/campaign.db" <<'PY' || fail "stored values are not the table's scores"
import json, sqlite3, sys
scores = {r["scores"]["score"] for r in json.load(open(sys.argv[1]))}
values = [v for (v,) in sqlite3.connect(sys.argv[2]).execute("select value from trials")]
assert len(values) == 6 and all(v in scores for v in values), values
PY
  ;;

drain_chain)
  cp "$src/tests/slurm/tiny_space.yaml" space.yaml
  # Each trial sleeps 2 s and logs job, trial, attempt and its score (from the architecture file).
  cat >train.sh <<'SH'
#!/bin/bash
arch=$1 out=$2 trial=$3 attempt=$4 log=$5
echo "start job=$SLURM_JOB_ID trial=$trial attempt=$attempt" >>"$log"
sleep 2
score=$(printf %03d $(( $(cksum <"$arch" | cut -d' ' -f1) % 1000 )))
mkdir -p "$out"
echo "{\"score\": 0.$score}" >"$out/metrics.json"
echo "done job=$SLURM_JOB_ID trial=$trial attempt=$attempt score=0.$score" >>"$log"
SH
  chmod +x train.sh
  cat >campaign.yaml <<YAML
name: camp
design_space: space.yaml
objective: {metric: score}
policy: {name: random}
budget: {trials: 25}
seed: 5
evaluator: {type: command, argv: [./train.sh, "{arch}", "{out}", "{trial}", "{attempt}", "$work/evals.log"]}
workers: 1
scheduler: {drain_timeout: 8}
YAML
  # With --time 1 --signal-lead 15 a job gets USR1 at most 45 s after it starts, but SLURM checks its
  # timers every 30 s and may signal up to 60 s early (sbatch(1)): at once, even before the job
  # step exists (measured: 1-15 s early). 25 trials x 2 s on one worker outlast the first job
  # whenever its signal comes; a job signalled early drains with few or no trials, and the chain
  # of five jobs finishes the campaign.
  out=$("$FLEXNAS" slurm submit campaign.yaml --time 1 --signal-lead 15 --chain 4 2>&1)
  echo "$out"
  grep -q "SLURM may send USR1 up to 60 s early" <<<"$out" || fail "submit did not warn about the early signal"
  ids=($(job_ids <<<"$out"))
  [[ ${#ids[@]} == 5 ]] || fail "expected five job ids in: $out"
  wait_ended "${ids[@]}"
  out=$("$FLEXNAS" slurm status camp)
  echo "$out"
  cat evals.log
  for id in "${ids[@]}"; do echo "--- job $id"; cat "camp/slurm/job-$id.out" "camp/slurm/job-$id.err" 2>/dev/null | tail -n 30 || true; done
  [[ $(cat "camp/slurm/job-${ids[0]}.exit") == 138 ]] || fail "the first job did not drain on USR1 (exit $(cat "camp/slurm/job-${ids[0]}.exit"))"
  # Every job drains (138; 75 when srun ended before flexnas ran) until one finishes the campaign
  # (0); the jobs after it are cancelled.
  finisher=
  for id in "${ids[@]:1}"; do
    if [[ -n "$finisher" ]]; then
      [[ $(job_state "$id") == CANCELLED ]] || fail "job $id after the finish was not cancelled: $(job_state "$id")"
      continue
    fi
    code=$(cat "camp/slurm/job-$id.exit" 2>/dev/null || echo none)
    case "$code" in
      0) finisher=$id ;;
      138|75) ;;
      *) fail "job $id ended with $code" ;;
    esac
  done
  [[ -n "$finisher" ]] || fail "no job finished the campaign"
  note "the campaign finished in job $finisher"
  [[ -e camp/slurm/finished ]] || fail "no finished marker"
  grep -q "campaign drained on a signal" <<<"$out" || fail "status does not explain the drain"
  # Budget honoured: exactly 25 trials, all completed, 25 distinct trials evaluated.
  [[ $(sqlite3 camp/campaign.db "select count(*) from trials") == 25 ]] || fail "not 25 trials in the store"
  [[ $(sqlite3 camp/campaign.db "select count(*) from trials where status='completed'") == 25 ]] ||
    fail "not all trials completed: $(sqlite3 camp/campaign.db 'select id, status from trials')"
  [[ $(grep -o 'trial=[0-9]*' evals.log | sort -u | wc -l) == 25 ]] || fail "more or fewer than 25 trials evaluated"
  # No completed trial lost: a trial finished in the first job is never evaluated again, and the
  # store holds the score it reported then.
  first_done=$(grep "^done job=${ids[0]} " evals.log | sed 's/.*trial=\([0-9]*\).*/\1/')
  [[ -n "$first_done" ]] || fail "no trial completed in the first job"
  for t in $first_done; do
    [[ $(grep -c "^start job=[0-9]* trial=$t " evals.log) == 1 ]] || fail "trial $t completed in job ${ids[0]} but ran again"
    logged=$(grep "^done job=${ids[0]} trial=$t " evals.log | sed 's/.*score=//')
    stored=$(sqlite3 camp/campaign.db "select value from trials where id=$t")
    python3 -c "import sys; sys.exit(abs($logged - $stored) > 1e-9)" || fail "trial $t: stored $stored, reported $logged"
  done
  grep "^start job=" evals.log | grep -qv "^start job=${ids[0]} " || fail "the follow-on jobs evaluated nothing"
  ;;

*)
  fail "unknown case (allowed: flag_errors, status_cancel, drain_chain_fake, campaign_table, drain_chain)"
  ;;
esac
note "passed"
