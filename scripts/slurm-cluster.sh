#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing `dgcolor compare --launcher slurm`
# (Debian: `apt-get install slurm-wlm munge`; run as root, as the daemons' user is root).
#
#   eval "$(scripts/slurm-cluster.sh start [DIR])"   # prints `export SLURM_CONF=DIR/slurm.conf`
#   sbatch --array=0-2 --wrap 'hostname'; squeue; sinfo
#   scripts/slurm-cluster.sh status [DIR]
#   scripts/slurm-cluster.sh stop [DIR]
#
# `start` writes everything under DIR (default: a new /tmp/dgcolor-slurm.XXXXXX): a munge key
# of its own and munged's socket, slurm.conf naming this host with the CPUs and memory
# `slurmd -C` reports and one partition `debug`, the controller's state, slurmd's spool and
# the logs. It picks free TCP ports, so it never meets another cluster on the machine, starts
# munged, slurmctld and slurmd in the foreground as background processes of their own session
# (their pids, the ones recorded in DIR/pids, are the daemons themselves), and waits until the
# node is idle. Every daemon carries DGCOLOR_SLURM_CLUSTER=DIR in its environment, and so does
# every slurmstepd that slurmd forks.
#
# `stop` cancels the cluster's jobs and waits for them to end, then ends the three recorded
# pids (SIGTERM, SIGKILL after 20 s), and checks that no process is left that belongs to
# this cluster: none of the recorded pids, no process with DGCOLOR_SLURM_CLUSTER=DIR in its
# environment (what slurmd forks: slurmstepd) and no job process (SLURM_CLUSTER_NAME is the
# cluster's name, unique per cluster: `dg` and its controller's port). It exits non-zero,
# naming them, if it had to kill such leftovers. DIR stays (logs); remove it after.
#
# Accounting: none (AccountingStorageType=accounting_storage/none). `sacct` needs slurmdbd and
# a MySQL/MariaDB server, too heavy for a test cluster; `dgcolor compare --status` reads
# squeue and the run directories, and uses sacct only where it works.
set -euo pipefail

usage() {
  echo "usage: $0 start [DIR] | stop [DIR] | status [DIR]" >&2
  exit 2
}

die() {
  echo "slurm-cluster.sh: $*" >&2
  exit 1
}

# The state directory of stop/status: the argument, else the directory of $SLURM_CONF.
state_dir() {
  local dir=${1:-}
  if [[ -z $dir && -n ${SLURM_CONF:-} ]]; then
    dir=$(dirname "$SLURM_CONF")
  fi
  [[ -n $dir ]] || die "no cluster directory given (and SLURM_CONF is not set)"
  [[ -f $dir/slurm.conf && -d $dir/pids ]] || die "$dir is not a cluster directory made by '$0 start'"
  (cd "$dir" && pwd)
}

port_free() {
  ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# Two consecutive free ports in 20000-29999, starting from a random one.
free_ports() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + (RANDOM % 5000) * 2))
    if port_free "$p" && port_free $((p + 1)); then
      echo "$p $((p + 1))"
      return
    fi
  done
  die "no free TCP port pair found"
}

alive() {
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null
}

# The pids of this script and its ancestors, never counted as the cluster's.
own_family() {
  local pid=$$
  while [[ -n $pid && $pid != 0 ]]; do
    echo "$pid"
    pid=$(awk '/^PPid:/ {print $2}' /proc/"$pid"/status 2>/dev/null || true)
  done
}

# Pids of processes with NAME=VALUE in their environment.
pids_with_env() {
  local entry=$1 f pid family
  family=" $(own_family | tr '\n' ' ') "
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    [[ $family == *" $pid "* ]] && continue
    if { tr '\0' '\n' <"$f" | grep -qxF -- "$entry"; } 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# Every process that belongs to the cluster in DIR: the recorded daemons, whatever carries
# the daemons' marker (slurmstepd inherits slurmd's environment), and job processes, which
# carry the cluster's unique name.
cluster_pids() {
  local dir=$1 name pid cluster
  cluster=$(sed -n 's/^ClusterName=//p' "$dir/slurm.conf")
  {
    for name in munged slurmctld slurmd; do
      pid=$(cat "$dir/pids/$name" 2>/dev/null || true)
      alive "$pid" && echo "$pid"
    done
    pids_with_env "DGCOLOR_SLURM_CLUSTER=$dir"
    [[ -n $cluster ]] && pids_with_env "SLURM_CLUSTER_NAME=$cluster"
  } | sort -un
}

start() {
  [[ $(id -u) == 0 ]] || die "run as root (the test cluster's daemons and jobs run as root)"
  local tool
  for tool in munged slurmctld slurmd sinfo sbatch ss; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install slurm-wlm munge)"
  done
  local dir=${1:-}
  if [[ -z $dir ]]; then
    dir=$(mktemp -d /tmp/dgcolor-slurm.XXXXXX)
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -d $dir/pids ]] && [[ -n $(cluster_pids "$dir") ]]; then
    die "a cluster is already running from $dir (stop it first)"
  fi
  mkdir -p "$dir"/{munge,ctld,spool,log,pids}
  chmod 700 "$dir" "$dir/munge"

  # munge: a key of our own, read only by its owner (munged refuses anything looser).
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  local socket=$dir/munge/munge.socket

  local host ports ctld_port slurmd_port node
  host=$(hostname -s)
  read -r ctld_port slurmd_port <<<"$(free_ports)"
  # This machine as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), so the node
  # is never drained for claiming more than it has.
  node=$(slurmd -C | head -1)
  [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
  node=${node#NodeName=* }

  cat >"$dir/slurm.conf" <<CONF
# Written by scripts/slurm-cluster.sh start: a one-node test cluster under $dir.
ClusterName=dg$ctld_port
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (120 s by default).
AuthInfo=socket=$socket,cred_expire=10
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/ctld/slurmctld.pid
SlurmdPidFile=$dir/spool/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container: processes are tracked by parentage, and not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Start a task soon after it becomes eligible (a requeued one waits for cred_expire).
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

  export SLURM_CONF=$dir/slurm.conf
  # Each daemon runs in the foreground (so $! is the daemon itself), in a session of its own
  # (so a signal to the caller's process group does not reach it), logging to DIR/log.
  env DGCOLOR_SLURM_CLUSTER="$dir" setsid munged --foreground --force --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
    --log-file="$dir/log/munged.log" </dev/null >>"$dir/log/munged.out" 2>&1 &
  echo $! >"$dir/pids/munged"
  local i
  for i in $(seq 100); do
    [[ -S $socket ]] && break
    alive "$(cat "$dir/pids/munged")" || die "munged exited: $(tail -n 5 "$dir/log/munged.out" "$dir/log/munged.log" 2>/dev/null)"
    sleep 0.1
  done
  [[ -S $socket ]] || die "munged made no socket in 10 s"

  env DGCOLOR_SLURM_CLUSTER="$dir" setsid slurmctld -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/pids/slurmctld"
  env DGCOLOR_SLURM_CLUSTER="$dir" setsid slurmd -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/pids/slurmd"

  local state=""
  for i in $(seq 120); do
    local name
    for name in slurmctld slurmd; do
      alive "$(cat "$dir/pids/$name")" || {
        stop_daemons "$dir" >&2 || true
        die "$name exited: $(tail -n 5 "$dir/log/$name.out" "$dir/log/$name.log" 2>/dev/null)"
      }
    done
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
  done
  if [[ $state != idle ]]; then
    stop_daemons "$dir" >&2 || true
    die "the node is not idle after 60 s (state '$state'); logs in $dir/log"
  fi
  echo "# one-node Slurm cluster up: $dir (munged $(cat "$dir/pids/munged"), slurmctld $(cat "$dir/pids/slurmctld"), slurmd $(cat "$dir/pids/slurmd"))" >&2
  echo "export SLURM_CONF=$dir/slurm.conf"
}

# Ends the recorded daemons (TERM, then KILL after 20 s); silent about ones already gone.
stop_daemons() {
  local dir=$1 name pid i
  for name in slurmd slurmctld munged; do
    pid=$(cat "$dir/pids/$name" 2>/dev/null || true)
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 200); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      echo "slurm-cluster.sh: $name ($pid) ignored SIGTERM for 20 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  done
}

stop() {
  local dir
  dir=$(state_dir "${1:-}")
  export SLURM_CONF=$dir/slurm.conf
  local ctld
  ctld=$(cat "$dir/pids/slurmctld" 2>/dev/null || true)
  if alive "$ctld"; then
    # Cancel every job of the cluster and let their processes end the way Slurm ends them.
    local jobs i
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n ${jobs// /} ]]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 60); do
        [[ -z $(squeue -h -o %A 2>/dev/null || true) ]] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemons "$dir"
  # What is left of this cluster (a slurmstepd or job process that outlived its daemon)?
  local left pid
  left=$(cluster_pids "$dir" | tr '\n' ' ')
  if [[ -n ${left// /} ]]; then
    echo "slurm-cluster.sh: processes of this cluster were left: $left" >&2
    for pid in $left; do
      echo "  $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)" >&2
      kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.5
    left=$(cluster_pids "$dir" | tr '\n' ' ')
    [[ -z ${left// /} ]] || die "still alive after SIGKILL: $left"
    exit 1
  fi
  echo "# stopped the cluster of $dir; no process of it is left" >&2
}

status() {
  local dir name pid
  dir=$(state_dir "${1:-}")
  export SLURM_CONF=$dir/slurm.conf
  echo "cluster: $dir"
  for name in munged slurmctld slurmd; do
    pid=$(cat "$dir/pids/$name" 2>/dev/null || true)
    if alive "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
  done
  if alive "$(cat "$dir/pids/slurmctld" 2>/dev/null || true)"; then
    sinfo
    squeue
  fi
}

case ${1:-} in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  status) status "${2:-}" ;;
  *) usage ;;
esac
