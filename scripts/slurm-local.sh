#!/usr/bin/env bash
# A one-node SLURM cluster on loopback, for tests and for trying `flexnas slurm` out.
#
#   scripts/slurm-local.sh start  [--dir DIR] [--port PORT]   write slurm.conf, start slurmctld + slurmd, wait for idle
#   scripts/slurm-local.sh stop   [--dir DIR]                 cancel jobs, stop the daemons by PID (and orphan steps)
#   scripts/slurm-local.sh status [--dir DIR]                 daemons, node state, queue, and what to export
#
# No systemd, no munge, no root-owned system paths: everything (config, state, spool, pid and log
# files) lives under DIR (default /tmp/flexnas-slurm-$UID). slurmctld listens on PORT (default 6817)
# and slurmd on PORT+1, so two clusters in different folders can run side by side with different
# ports. The flexnas commands and SLURM's own clients find the cluster through SLURM_CONF:
#
#   export SLURM_CONF=DIR/slurm.conf
#
# Configuration (measured on SLURM 22.05, see PLATFORM.md): auth/none + cred/none,
# proctrack/linuxproc, task/none, no accounting (sacct has no data; use squeue/scontrol),
# select/cons_tres with CR_Core, MpiDefault=pmix (Debian's Open MPI has no PMI2).
set -euo pipefail

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

action=${1:-}
[[ -n "$action" ]] || usage
shift
dir=${FLEXNAS_SLURM_DIR:-/tmp/flexnas-slurm-$(id -u)}
port=${FLEXNAS_SLURM_PORT:-6817}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
    --dir=*) dir=${1#--dir=}; shift ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    -h|--help) usage ;;
    *) echo "slurm-local.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] && (( port >= 1024 && port < 65535 )) ||
  { echo "slurm-local.sh: --port: expected a number in 1024..65534, got '$port'" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf

need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "slurm-local.sh: '$1' not found; install the Debian packages slurm-wlm (slurmctld, slurmd, client commands)" >&2
  exit 1
}

# pid_of NAME: the PID in DIR/NAME.pid if that process is alive, else nothing.
pid_of() {
  local f=$dir/$1.pid pid
  [[ -s "$f" ]] || return 0
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

node_name() { hostname -s; }

node_state() { scontrol show node "$(node_name)" 2>/dev/null | sed -n 's/.*State=\([^ ]*\).*/\1/p' | head -n1; }

write_conf() {
  local host mem cpus user
  host=$(node_name)
  cpus=$(nproc)
  # Leave 10% of the memory to the system, as a cluster would.
  mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  user=$(id -un)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  : >"$dir/plugstack.conf"
  cat >"$conf.tmp" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on loopback (folder $dir).
ClusterName=flexnas-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PlugStackConfig=$dir/plugstack.conf
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
# Quick turnaround for tests: 5 s between SIGTERM and SIGKILL at a time limit, no grace beyond it,
# and finished jobs stay visible to squeue/scontrol for 10 minutes.
KillWait=5
OverTimeLimit=0
MinJobAge=600
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv -f "$conf.tmp" "$conf"
}

start() {
  need slurmctld; need slurmd; need scontrol
  local ctl d
  ctl=$(pid_of slurmctld); d=$(pid_of slurmd)
  if [[ -n "$ctl" && -n "$d" ]]; then
    echo "slurm-local: already running in $dir (slurmctld $ctl, slurmd $d)"
  else
    [[ -z "$ctl" && -z "$d" ]] || stop_daemons
    write_conf
    # -c: a clean start (jobs of an earlier run that was killed are not recovered and re-run);
    # both daemons fork into the background themselves.
    slurmctld -c -f "$conf" || { echo "slurm-local: slurmctld failed to start; see $dir/log/slurmctld.log" >&2; exit 1; }
    slurmd -f "$conf" || { echo "slurm-local: slurmd failed to start; see $dir/log/slurmd.log" >&2; exit 1; }
  fi
  local state="" i
  for ((i = 0; i < 300; i++)); do  # at most 30 s
    state=$(node_state || true)
    case "$state" in
      IDLE*|MIXED*|ALLOCATED*) break ;;
      DOWN*|DRAIN*) scontrol update nodename="$(node_name)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.1
  done
  case "$state" in
    IDLE*|MIXED*|ALLOCATED*) ;;
    *)
      echo "slurm-local: node $(node_name) did not become idle within 30 s (state '${state:-unknown}')" >&2
      echo "  logs: $dir/log/slurmctld.log, $dir/log/slurmd.log" >&2
      exit 1 ;;
  esac
  echo "slurm-local: node $(node_name) is ${state,,} ($(nproc) CPUs); cluster folder $dir"
  echo "export SLURM_CONF=$conf"
}

# Orphan job-step daemons of this cluster (slurmstepd ignores SIGTERM once its slurmd is gone).
stepd_pids() {
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
    # Steps of this cluster run with this cluster's spool folder in their environment or open files.
    if grep -qs "$dir" "/proc/$p/environ" 2>/dev/null || ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$dir/"; then
      echo "$p"
    fi
  done
}

# descendants PID: every process below PID (children first listed, recursively).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}

stop_daemons() {
  local name pid i
  for name in slurmd slurmctld; do
    pid=$(pid_of "$name")
    [[ -n "$pid" ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm-local: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

stop() {
  [[ -f "$conf" ]] || { echo "slurm-local: no cluster in $dir"; return 0; }
  local i jobs
  if [[ -n "$(pid_of slurmctld)" ]]; then
    scancel --full --quiet --signal=KILL "--user=$(id -un)" 2>/dev/null || true
    scancel --quiet "--user=$(id -un)" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do  # at most 10 s for running jobs to end
      jobs=$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null || true)
      [[ -z "$jobs" ]] && break
      sleep 0.1
    done
  fi
  stop_daemons
  local pids
  pids=$(stepd_pids)
  if [[ -n "$pids" ]]; then
    # An orphan slurmstepd ignores SIGTERM: stop it first (so it cannot respawn anything),
    # then kill every process below it.
    local all="" pid
    for pid in $pids; do all+=" $pid $(descendants "$pid")"; done
    kill -STOP $pids 2>/dev/null || true
    kill -KILL $all 2>/dev/null || true
  fi
  echo "slurm-local: stopped (folder $dir)"
}

status() {
  local ctl d
  ctl=$(pid_of slurmctld); d=$(pid_of slurmd)
  echo "cluster folder: $dir"
  echo "slurmctld: $([[ -n "$ctl" ]] && echo "running (pid $ctl)" || echo "not running")"
  echo "slurmd:    $([[ -n "$d" ]] && echo "running (pid $d)" || echo "not running")"
  if [[ -n "$ctl" ]]; then
    echo "node $(node_name): $(node_state || echo unknown)"
    squeue -o "%.10i %.12P %.24j %.10T %.10M %.10l %R" 2>/dev/null || true
  fi
  echo "export SLURM_CONF=$conf"
  [[ -n "$ctl" && -n "$d" ]]
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "slurm-local.sh: unknown action '$action' (allowed: start, stop, status)" >&2; usage ;;
esac
