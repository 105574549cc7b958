#!/usr/bin/env bash
# MPI integration tests of `flexnas search` under a real `mpirun -np 3 --oversubscribe`:
#  1. a table-evaluator campaign gives the same trials as the local runner with the same seed;
#  2. trials that segfault, exceed their memory limit or time out are recorded and retried, and
#     the campaign finishes;
#  3. a worker rank killed with kill -9: Open MPI 4.1's mpirun aborts the whole job; the recovery
#     path is `--resume`, which keeps every completed trial and finishes within the budget;
#  4. measured latency/memory constraints (rank 0 measures, tests/launch/fake_flexnas.sh stands in
#     for flexnas): the same trials and exclusions as the local runner.
# Usage: mpi_campaign_test.sh FLEXNAS TRIAL_HELPER DATA_DIR WORK_DIR
set -euo pipefail
FLEXNAS=$1 HELPER=$2 DATA=$3 WORK=$4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
MPIRUN="mpirun -np 3 --oversubscribe"

"$FLEXNAS" library import --archs "$DATA/nas_bench_bert_sample.json" --neighbors 10 --out lib.json --quiet >/dev/null

# 1. local runner vs MPI runner, same seed: same trials.
table_yaml() {
  cat > "$1.yaml" <<YAML
name: $1
library: lib.json
objective: {metric: glue}
policy: {name: evolution, population: 6, sample_size: 3}
budget: {trials: 24}
seed: 3
evaluator: {type: table, table: $DATA/nas_bench_bert_sample.json}
workers: 2
scheduler: {window: 4}
YAML
}
table_yaml local; table_yaml mpi
"$FLEXNAS" search local.yaml --quiet
$MPIRUN "$FLEXNAS" search mpi.yaml --quiet
"$FLEXNAS" status local --trials | cut -d' ' -f1-4,6,7 > local.trials
"$FLEXNAS" status mpi --trials | cut -d' ' -f1-4,6,7 > mpi.trials
[ "$(grep -c completed mpi.trials)" = 24 ] || fail "MPI table campaign: expected 24 completed trials"
diff local.trials mpi.trials || fail "MPI and local runners gave different trials"
echo "ok 1: MPI table campaign = local runner (24 trials)"

# 2. segfault, memory limit and timeout on first attempts: recorded, retried, campaign finishes.
cat > chaos.yaml <<YAML
name: chaos
library: lib.json
objective: {metric: score}
policy: random
budget: {trials: 8}
evaluator: {type: command, argv: ["$HELPER", chaos]}
trial: {retries: 1, timeout: 2, memory_limit_mb: 256}
YAML
$MPIRUN "$FLEXNAS" search chaos.yaml --quiet
"$FLEXNAS" status chaos --trials > chaos.trials
[ "$(grep -c ' completed ' chaos.trials)" = 8 ] || { cat chaos.trials; fail "chaos: not every trial completed"; }
for id in 1 2 3 7; do
  awk -v id=$id '$1==id && $5!=2 {exit 1}' chaos.trials || fail "chaos: trial $id should have needed 2 attempts"
done
"$FLEXNAS" status chaos > chaos.status
echo "ok 2: segfault / memory limit / timeout recorded and retried under MPI"

# 3. kill -9 of a worker rank.
cat > kill.yaml <<YAML
name: kill
library: lib.json
objective: {metric: score}
policy: random
budget: {trials: 20}
evaluator: {type: command, argv: ["$HELPER", "sleep:300"]}
scheduler: {heartbeat_timeout: 5, drain_timeout: 5}
YAML
$MPIRUN "$FLEXNAS" search kill.yaml --quiet > kill1.log 2>&1 &
MPIRUN_PID=$!
done_count() { "$FLEXNAS" status kill --trials 2>/dev/null | grep -c ' completed ' || true; }
for _ in $(seq 1 300); do [ "$(done_count)" -ge 3 ] && break; sleep 0.1; done
VICTIM=""
for p in $(pgrep -f "$FLEXNAS search kill.yaml"); do
  if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then VICTIM=$p; fi
done
[ -n "$VICTIM" ] || fail "could not find worker rank 1"
kill -9 "$VICTIM"
set +e; wait $MPIRUN_PID; RC=$?; set -e
echo "mpirun exit code after kill -9 of rank 1: $RC"
"$FLEXNAS" status kill --trials | awk '$4=="completed"' > kill.before
BEFORE=$(wc -l < kill.before)
if [ "$(done_count)" -lt 20 ]; then
  $MPIRUN "$FLEXNAS" search kill.yaml --resume --quiet > kill2.log 2>&1 || { cat kill2.log; fail "resume after the killed rank failed"; }
fi
"$FLEXNAS" status kill --trials > kill.after
[ "$(grep -c ' completed ' kill.after)" = 20 ] || { cat kill.after; fail "kill: expected 20 completed trials"; }
[ "$(grep -vc '^#' kill.after)" = 20 ] || fail "kill: the budget of 20 trials was not honoured"
while read -r line; do
  id=$(echo "$line" | cut -d' ' -f1); val=$(echo "$line" | cut -d' ' -f6)
  awk -v id="$id" -v val="$val" '$1==id && $6==val {found=1} END {exit !found}' kill.after || fail "trial $id lost its result"
done < kill.before
echo "ok 3: worker rank killed (mpirun rc $RC); $BEFORE completed trials kept, campaign finished after --resume"

# 4. measured constraints: rank 0 measures each proposal once and excludes the violating ones.
FAKE=$(cd "$(dirname "$0")" && pwd)/fake_flexnas.sh
constrained_yaml() {
  cat > "$1.yaml" <<YAML
name: $1
library: lib.json
objective: {metric: score, max_latency_ms: 50, max_memory_mb: 800}
policy: {name: evolution, population: 5, sample_size: 2}
budget: {trials: 12}
seed: 11
evaluator: {type: builtin, executable: $FAKE, tokenizer: $DATA/nas_bench_bert_sample.json, corpus: $DATA/nas_bench_bert_sample.json, steps: 10, warm_start: false}
workers: 2
scheduler: {window: 4}
YAML
}
constrained_yaml clocal; constrained_yaml cmpi
"$FLEXNAS" search clocal.yaml --quiet
$MPIRUN "$FLEXNAS" search cmpi.yaml --quiet
"$FLEXNAS" status clocal --trials | cut -d' ' -f1-4,6,7 > clocal.trials
"$FLEXNAS" status cmpi --trials | cut -d' ' -f1-4,6,7 > cmpi.trials
[ "$(grep -c completed cmpi.trials)" = 12 ] || fail "MPI constrained campaign: expected 12 completed trials"
diff clocal.trials cmpi.trials || fail "MPI and local runners gave different trials under measured constraints"
"$FLEXNAS" status clocal | grep '^measured:' > clocal.measured
"$FLEXNAS" status cmpi | grep '^measured:' > cmpi.measured
grep -q 'excluded by measured constraints: [1-9]' cmpi.measured || fail "MPI constrained campaign excluded nothing"
diff clocal.measured cmpi.measured || fail "MPI and local runners measured or excluded differently"
echo "ok 4: measured constraints under MPI = local runner ($(cat cmpi.measured))"
