#!/usr/bin/env bash
# A single-node Slurm on this machine for the sweep tests: installs Debian's slurm-wlm and munge if
# they are missing, writes a minimal slurm.conf (one node: this host, all its CPUs; one partition;
# requeue allowed; no accounting database), and starts munged, slurmctld and slurmd unless they
# run. Idempotent; about a minute on a fresh Debian 12 machine, a second when already up. Needs
# root (or sudo), as a cluster's daemons do.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "setup: installing slurm-wlm and munge (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ { printf "%d", $2 / 1024 - 1024 }' /proc/meminfo)
conf=/etc/slurm/slurm.conf
marker="# written by vlsm tests/setup/slurm.sh"
if [ ! -f "$conf" ] || grep -q "$marker" "$conf"; then
  as_root mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  wanted=$(cat <<CONF
$marker
ClusterName=vlsm
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)
  if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
    echo "$wanted" | as_root tee "$conf" >/dev/null
    as_root pkill -x slurmctld 2>/dev/null || true
    as_root pkill -x slurmd 2>/dev/null || true
  fi
fi

if [ ! -s /etc/munge/munge.key ]; then
  as_root mkdir -p /etc/munge
  as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
as_root chown munge:munge /etc/munge/munge.key 2>/dev/null || true
as_root chmod 400 /etc/munge/munge.key
as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
as_root chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  as_root runuser -u munge -- /usr/sbin/munged || as_root /usr/sbin/munged --force
fi
if ! pgrep -x slurmctld >/dev/null; then as_root /usr/sbin/slurmctld; fi
if ! pgrep -x slurmd >/dev/null; then as_root /usr/sbin/slurmd; fi

# Ready when the node takes jobs.
for _ in $(seq 1 60); do
  if sinfo -h -N -o "%T" 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
    echo "setup: Slurm is up ($(sinfo -h -o '%P %D nodes %c CPUs %T' | head -1))"
    exit 0
  fi
  as_root scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "setup: Slurm did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
