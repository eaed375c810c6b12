#!/usr/bin/env bash
# A real two-node SLURM cluster on this one machine, for the tests that submit to SLURM.
#
# Nodes n1 and n2 are two slurmd daemons on 127.0.0.1 (distinct ports, shared slurm.conf), in
# partition "debug"; one slurmctld; munged as user munge. No accounting database: the project's
# SLURM launcher asks scontrol for job states when sacct has nothing to say. Everything runs as
# root (SlurmUser=root), as CI does. Idempotent: `up` installs what is missing (Debian's
# slurmctld, slurmd, slurm-client, munge), writes the config, starts what is not running and
# waits until both nodes take jobs; `down` stops the daemons (by their pid files).
#
# Usage: .ci/slurm-cluster.sh up|down|status
# The state lives under $LUCID_SLURM_DIR (default /var/lib/lucid-arch-slurm); the config is
# /etc/slurm/slurm.conf, where SLURM's commands (sbatch, srun, squeue, scontrol) look for it.
set -euo pipefail

DIR="${LUCID_SLURM_DIR:-/var/lib/lucid-arch-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by lucid_arch .ci/slurm-cluster.sh"
NODES=(n1 n2)
CTLD_PORT=16817
NODE_PORTS=(16818 16819)
PARTITION=debug

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"

alive() {  # alive PIDFILE COMMAND-NAME: the daemon the pid file names is running
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm")" == "$2" ]] || return 1
    [[ "$(awk '{print $3}' "/proc/$pid/stat")" != Z ]]  # a zombie is not running
}

install_packages() {
    local missing=()
    for cmd in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd##*:}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
    local host cpus mem_mb tmp
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 4 ))  # a quarter each: room for the rest
    mkdir -p /etc/slurm "$DIR/ctld" "$DIR/log"
    if [[ -f "$CONF" ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; this machine has a SLURM of its own, use that"
    fi
    tmp="$(mktemp)"
    cat > "$tmp" <<EOF
$MARK
# Two nodes on one machine for lucid_arch's tests. Every path is absolute: the daemons chdir.
ClusterName=lucid
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits out the credential's lifetime before it may start again (default 120 s; 5 is the least).
AuthInfo=cred_expire=5
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# Look for startable jobs every second (a requeued job becomes eligible without an event).
SchedulerParameters=sched_interval=1
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# A requeued or cancelled job's processes get SIGTERM, then SIGKILL this many seconds later: at
# once here, so that a test's requeue interrupts a job where it stands.
KillWait=0
MailProg=/bin/true
# Finished jobs stay visible to scontrol for this long (there is no accounting to ask).
MinJobAge=3600
InactiveLimit=0
SlurmdTimeout=300
NodeName=${NODES[0]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${NODE_PORTS[0]} CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
NodeName=${NODES[1]} NodeHostname=$host NodeAddr=127.0.0.1 Port=${NODE_PORTS[1]} CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
EOF
    if ! cmp -s "$tmp" "$CONF" 2>/dev/null; then
        mv "$tmp" "$CONF"
        chmod 644 "$CONF"
        say "wrote $CONF"
        stop_slurm  # daemons read the config at start
    else
        rm -f "$tmp"
    fi
}

ensure_hosts() {  # a rendezvous on the first node's name must resolve
    local name
    for name in "${NODES[@]}"; do
        getent hosts "$name" >/dev/null 2>&1 || echo "127.0.0.1 $name  # lucid_arch SLURM test node" >> /etc/hosts
    done
}

start_munge() {
    local key=/etc/munge/munge.key
    if [[ ! -s $key ]]; then
        mkdir -p /etc/munge
        head -c 1024 /dev/urandom > "$key"
    fi
    chown munge:munge /etc/munge "$key" && chmod 700 /etc/munge && chmod 400 "$key"
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    alive /run/munge/munged.pid munged && return 0
    runuser -u munge -- /usr/sbin/munged
    munge -n | unmunge >/dev/null || die "munge does not round-trip a credential"
}

start_slurm() {
    local i
    alive "$DIR/slurmctld.pid" slurmctld || slurmctld -f "$CONF"
    for i in "${!NODES[@]}"; do
        alive "$DIR/slurmd-${NODES[$i]}.pid" slurmd || slurmd -f "$CONF" -N "${NODES[$i]}"
    done
}

stop_slurm() {
    local pidfile name pid
    for pidfile in "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid"; do
        name="$(basename "$pidfile" .pid)"
        name="${name%%-*}"
        if alive "$pidfile" "$name"; then
            pid="$(cat "$pidfile")"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    done
}

wait_ready() {  # both nodes idle (or busy) in a partition that is up
    local states
    for _ in $(seq 60); do
        states="$(sinfo -h -N -p "$PARTITION" -o '%N %t' 2>/dev/null || true)"
        if [[ "$(grep -cE ' (idle|mix|alloc)$' <<<"$states")" -eq ${#NODES[@]} ]]; then
            say "up: partition $PARTITION, nodes ${NODES[*]} ($(tr '\n' ' ' <<<"$states"))"
            return 0
        fi
        if grep -qE ' (down|drain|drng|fail)\*?$' <<<"$states"; then
            scontrol update NodeName="$(IFS=,; echo "${NODES[*]}")" State=RESUME 2>/dev/null || true
        fi
        sleep 0.5
    done
    sinfo -N >&2 || true
    tail -n 20 "$DIR"/log/*.log >&2 || true
    die "the nodes did not come up (logs under $DIR/log)"
}

case "${1:-}" in
    up)
        install_packages
        ensure_hosts
        write_config
        start_munge
        start_slurm
        wait_ready
        ;;
    down)
        stop_slurm
        if alive /run/munge/munged.pid munged; then
            kill "$(cat /run/munge/munged.pid)"
        fi
        say "down"
        ;;
    status)
        for f in "$DIR/slurmctld.pid" "$DIR"/slurmd-*.pid; do
            [[ -e $f ]] && { alive "$f" "$(basename "$f" .pid | cut -d- -f1)" && say "$(basename "$f" .pid): running" || say "$(basename "$f" .pid): stale pid file"; }
        done
        sinfo -N 2>/dev/null || { say "no slurmctld answering"; exit 1; }
        ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
