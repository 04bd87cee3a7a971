#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests and for trying the SLURM
# templates: munged, slurmctld and slurmd on localhost, no cgroups
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none).
#
#   deploy/slurm/local-cluster.sh start   # install (apt, as root) if needed, configure, start
#   deploy/slurm/local-cluster.sh status  # exit 0 when the node accepts jobs
#   deploy/slurm/local-cluster.sh stop    # stop the daemons this script started
#
# It needs root (the daemons and apt-get). It writes /etc/slurm/slurm.conf only
# when that file is absent or was written by this script, so a real
# installation is never overwritten.
set -euo pipefail

RUN_DIR=${INTERPHASE_SLURM_RUN_DIR:-/var/run/interphase-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by interphase deploy/slurm/local-cluster.sh"
NODE=$(hostname -s)

die() { echo "local-cluster.sh: $*" >&2; exit 2; }

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are missing; as root run: apt-get install -y slurm-wlm munge"
  command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and apt-get is not available"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }
}

write_config() {
  if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  local cpus memory_mb
  cpus=$(nproc)
  memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$RUN_DIR"
  cat >"$CONF" <<EOF
$MARK
ClusterName=interphase
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_munge() {
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$RUN_DIR/munged.started"  # so that stop ends it too
}

ready() { sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

start() {
  [ "$(id -u)" = 0 ] || die "needs root (the SLURM daemons run as root here)"
  install_packages
  if ready; then echo "local SLURM cluster already running"; return 0; fi
  write_config
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if ready; then echo "local SLURM cluster running (node $NODE)"; return 0; fi
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  die "the node did not become ready within 60 s; see /var/log/slurm/slurmctld.log and slurmd.log"
}

stop() {
  for daemon in slurmd slurmctld; do
    if [ -s "$RUN_DIR/$daemon.pid" ]; then
      kill "$(cat "$RUN_DIR/$daemon.pid")" 2>/dev/null || true
      rm -f "$RUN_DIR/$daemon.pid"
    fi
  done
  if [ -e "$RUN_DIR/munged.started" ] && [ -s /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$RUN_DIR/munged.started"
  fi
}

case "${1:-start}" in
  start) start ;;
  status) ready ;;
  stop) stop ;;
  *) die "usage: $0 start|status|stop" ;;
esac
