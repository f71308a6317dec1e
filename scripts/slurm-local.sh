#!/usr/bin/env bash
# A single-node Slurm cluster from Debian's packages (slurm-wlm, munge), for `make test-slurm`:
# everything (config, state, spool, logs, munge key and socket) lives under one directory, the
# daemons run without systemd and without cgroups (proctrack/linuxproc, task/none), and nothing
# outside that directory is touched.
#
#   scripts/slurm-local.sh start DIR   start munged, slurmctld and slurmd; wait for the node
#   scripts/slurm-local.sh stop DIR    stop them
#   export SLURM_CONF=DIR/slurm.conf  then sbatch, squeue, scancel, sinfo talk to it
#
# Needs root (slurmd starts jobs as their user) and: apt-get install slurm-wlm munge
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

stop() {
    for p in slurmd slurmctld munged; do
        if [ -f "$dir/$p.pid" ]; then
            kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
        fi
    done
    sleep 1
    for p in slurmd slurmctld munged; do
        if [ -f "$dir/$p.pid" ] && kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null; then
            kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
        fi
        rm -f "$dir/$p.pid"
    done
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) die "unknown command '$cmd' (start | stop)" ;;
esac

for t in munged slurmctld slurmd sbatch sinfo; do
    command -v "$t" >/dev/null || die "$t not found: apt-get install slurm-wlm munge"
done
[ "$(id -u)" = 0 ] || die "run as root: slurmd starts jobs as their user"
mkdir -p "$dir"/{state,spool,munge}
dir=$(cd "$dir" && pwd)
chmod 700 "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
# Ports in the dynamic range, derived from the directory so that two clusters do not collide.
base=$((20000 + $(echo "$dir" | cksum | cut -d' ' -f1) % 20000))

[ -f "$dir/munge/munge.key" ] || head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" \
    || die "munged did not start (see $dir/munged.log)"

cat > "$dir/slurm.conf" <<EOF
ClusterName=proxal-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (see $dir/slurmctld.log)"
slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $dir/slurmd.log)"
for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case $state in
    idle*|mixed*|allocated*) echo "slurm-local: node $host is $state (SLURM_CONF=$SLURM_CONF)"; exit 0 ;;
    esac
    sleep 1
done
die "the node did not come up in 60 s (state '${state:-none}'; see $dir/slurmctld.log, $dir/slurmd.log)"
