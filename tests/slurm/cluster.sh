#!/usr/bin/env bash
# Two-node Slurm test cluster on ONE machine, for end-to-end tests (CI too).
#
#   sudo tests/slurm/cluster.sh up       # install deps if missing, (re)start everything
#   sudo tests/slurm/cluster.sh status   # show daemons, nodes, netns
#   sudo tests/slurm/cluster.sh down     # stop everything 'up' started
#
# Layout:
#   node1 = the root network namespace, address 10.77.0.1 on veth "hsn0"; its slurmd runs
#           in its own mount+UTS namespace (tasks see hostname node1, a private /tmp).
#   node2 = network namespace $NS, address 10.77.0.2 on veth "hsn0";
#           its slurmd runs in its own mount+UTS namespace with a private /tmp.
#   => job files/binaries must NOT live in /tmp (neither node sees the host's): use
#      /var/tmp or the repo dir.
#   slurmctld and a private munged run in the root namespace.
# Everything (config, munge key+socket, state, spool, logs) lives under $DTASK_SLURM_DIR
# (default /var/tmp/dtask-slurm); /etc/slurm/slurm.conf is a symlink to its slurm.conf,
# so srun/sbatch/sinfo/scontrol work with no environment. /etc/hosts gets node1/node2
# lines tagged "# dtask-slurm". 'up' starts from any leftover state; 'down' undoes it all
# (logs are kept in $DTASK_SLURM_DIR/log for post-mortem; 'up' wipes them).
#
# Environment knobs: DTASK_SLURM_DIR, DTASK_SLURM_CPUS (CPUs declared per node, default 4),
# DTASK_SLURM_MEM_MB (memory declared per node, default 4096), DTASK_SLURM_UP_TIMEOUT (seconds to wait for idle nodes, default 90),
# DTASK_SLURM_KEEP_ON_FAIL=1 (a failed 'up' prints diagnostics and normally tears down; keep it).
set -euo pipefail

S=${DTASK_SLURM_DIR:-/var/tmp/dtask-slurm}
CPUS=${DTASK_SLURM_CPUS:-4}
# Memory declared per node (MB): jobs that ask for --mem (slurm::Cluster's `memory`) must fit.
MEM_MB=${DTASK_SLURM_MEM_MB:-4096}
UP_TIMEOUT=${DTASK_SLURM_UP_TIMEOUT:-90}
NS=dtask-node2
IF=hsn0
TMPIF=dtsl-tmp0
NET=10.77.0
TAG='# dtask-slurm'
CONF=$S/slurm.conf
MUNGE_SOCK=$S/munge/munge.socket
PKGS=(slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge libpmix2 libpmix-dev
      openmpi-bin libopenmpi-dev gcc libc6-dev iproute2 util-linux procps)

log() { echo "[cluster.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "DTASK_SLURM_CPUS must be a positive integer"

# ---------------------------------------------------------------- packages
ensure_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Don't let package postinst scripts start system munge/slurm daemons.
  local prc=/usr/sbin/policy-rc.d made_prc=0
  if [ ! -e $prc ]; then printf '#!/bin/sh\nexit 101\n' >$prc; chmod +x $prc; made_prc=1; fi
  local rc=0
  timeout 900 apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null || rc=$?
  [ $rc -eq 0 ] && { timeout 1800 apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      --no-install-recommends "${missing[@]}" >/dev/null || rc=$?; }
  [ $made_prc = 1 ] && rm -f $prc
  [ $rc -eq 0 ] || die "apt-get failed (rc=$rc) installing: ${missing[*]}"
}

# ---------------------------------------------------------------- teardown helpers
kill_pids() { # kill_pids SIGNAL pid...  (never ourselves)
  local sig=$1 p; shift
  for p in "$@"; do
    [ -n "$p" ] && [ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && kill "-$sig" "$p" 2>/dev/null || true
  done
}

# pids of every process in the netns of node2 / the UTS namespace of node1's slurmd
netns_pids() { ip netns pids "$NS" 2>/dev/null || true; }
uts_pids() { # only if that UTS namespace really is one of ours (hostname node1/node2)
  local ref=$1 p found=""
  [ -n "$ref" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/uts" 2>/dev/null)" = "$ref" ] && found="$found ${p#/proc/}"
  done
  for p in $found; do
    case "$(nsenter -t "$p" -u hostname 2>/dev/null)" in
      node1|node2) tr ' ' '\n' <<<"$found"; return 0 ;;
      "") continue ;;   # process vanished, try the next
      *) return 0 ;;
    esac
  done
  return 0
}
live_only() { # drop zombies: PID 1 here may not reap orphans, and they cannot be killed
  local p st
  for p in "$@"; do
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1 || true)
    [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
  done
  return 0
}
pidfile_pid() { [ -s "$1" ] && cat "$1" 2>/dev/null || true; }

stop_all() {
  # 1. be nice first: cancel jobs if a controller answers
  if [ -e "$CONF" ] && timeout 5 scontrol -Q ping >/dev/null 2>&1; then
    timeout 10 scancel --quiet --full --partition=debug >/dev/null 2>&1 || true
  fi
  # 2. collect every pid belonging to the cluster
  local uts="" n1
  [ -s "$S/run/node1.uts" ] && uts=$(cat "$S/run/node1.uts")
  n1=$(pidfile_pid "$S/run/slurmd-node1.pid")
  [ -z "$uts" ] && [ -n "$n1" ] && uts=$(readlink "/proc/$n1/ns/uts" 2>/dev/null || true)
  # also the UTS namespaces of any (stale) slurmd/slurmstepd, e.g. if the state dir was wiped
  local p u utss="$uts"
  for p in $(pgrep -x slurmd; pgrep -x slurmstepd); do
    u=$(readlink "/proc/$p/ns/uts" 2>/dev/null || true); [ -n "$u" ] && utss="$utss $u"
  done
  local root_uts; root_uts=$(readlink /proc/$$/ns/uts 2>/dev/null || true)
  utss=$(tr ' ' '\n' <<<"$utss" | grep -v -x -F -e "$root_uts" -e '' | sort -u || true)  # never sweep the host's own UTS ns
  local pids round
  for round in TERM KILL KILL; do
    pids=$( { netns_pids; for u in $utss; do uts_pids "$u"; done;
              # stale slurm daemons from any earlier/foreign setup would hold the ports
              pgrep -x slurmctld; pgrep -x slurmd; pgrep -x slurmstepd;
              pgrep -f "munged .*--socket=$MUNGE_SOCK"; } 2>/dev/null | sort -un || true)
    pids=$(live_only $pids)
    [ -z "$pids" ] && break
    log "SIG$round to stale pids: $(tr '\n' ' ' <<<"$pids")"
    # shellcheck disable=SC2086
    kill_pids $round $pids
    local tries=20
    [ $round = TERM ] && tries=8
    for _ in $(seq $tries); do
      sleep 0.25
      local alive=0 p
      [ -n "$(live_only $pids)" ] && alive=1
      [ $alive = 0 ] && break
    done
  done
  # 3. network: netns, veth (deleting one end removes the pair), stray 10.77.0.x addresses
  if ip netns list 2>/dev/null | grep -qw "^$NS"; then ip netns del "$NS" 2>/dev/null || true; fi
  ip link del "$IF" 2>/dev/null || true
  ip link del "$TMPIF" 2>/dev/null || true
  local line dev addr
  while read -r line; do
    dev=$(awk '{print $2}' <<<"$line"); addr=$(awk '{print $4}' <<<"$line")
    dev=${dev%%@*}
    log "removing stray address $addr from $dev"
    ip addr del "$addr" dev "$dev" 2>/dev/null || true
  done < <(ip -o -4 addr show 2>/dev/null | grep " inet $NET\." || true)
  # PMIx step dirs left in the host's /tmp by older setups where node1 shared it
  rm -rf /tmp/spmix_appdir_* 2>/dev/null || true
  # 4. /etc/hosts lines (ours, or any stale node1/node2/10.77.0.x line)
  clean_hosts
  # 5. config symlink
  if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
}

clean_hosts() {
  local tmp; tmp=$(mktemp)
  awk -v tag="$TAG" -v net="^$NET." '
    index($0, tag) { next }
    $1 ~ net { next }
    { for (i = 2; i <= NF; i++) if ($i == "node1" || $i == "node2") next; print }
  ' /etc/hosts >"$tmp"
  # write in place: /etc/hosts may be a bind mount that cannot be replaced
  cmp -s "$tmp" /etc/hosts || cat "$tmp" >/etc/hosts
  rm -f "$tmp"
}

# ---------------------------------------------------------------- bring-up
write_conf() {
  local ctl; ctl=$(hostname -s)
  cat >"$CONF" <<EOF
# generated by tests/slurm/cluster.sh -- do not edit
ClusterName=dtask
SlurmctldHost=$ctl($NET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd-%n.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
MpiDefault=pmix
TaskProlog=$S/task_prolog.sh
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=node1 NodeAddr=$NET.1 NodeHostname=node1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
NodeName=node2 NodeAddr=$NET.2 NodeHostname=node2 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
EOF
  # Nodes declare more CPUs than the machine has: tell Open MPI to yield when idle,
  # or oversubscribed ranks busy-poll and a 6-rank job can take minutes on a loaded box.
  cat >"$S/task_prolog.sh" <<'EOF'
#!/bin/sh
[ -n "${OMPI_MCA_mpi_yield_when_idle:-}" ] || echo "export OMPI_MCA_mpi_yield_when_idle=1"
# The site's MPI network, as a real cluster's admin would set it: the nodes reach each other only
# over hsn0, and Open MPI's TCP transport otherwise also tries eth0 (unreachable from node2's
# namespace), which fails the job at random ("connect() to 192.0.2.2 failed").
[ -n "${OMPI_MCA_btl_tcp_if_include:-}" ] || echo "export OMPI_MCA_btl_tcp_if_include=hsn0"
EOF
  chmod 0755 "$S/task_prolog.sh"
}

setup_net() {
  ip netns add "$NS"
  ip link add "$TMPIF" type veth peer name "$IF" netns "$NS"
  ip link set "$TMPIF" name "$IF"
  ip addr add "$NET.1/24" dev "$IF"
  ip link set "$IF" up
  ip -n "$NS" addr add "$NET.2/24" dev "$IF"
  ip -n "$NS" link set "$IF" up
  ip -n "$NS" link set lo up
  printf '%s.1 node1 %s\n%s.2 node2 %s\n' "$NET" "$TAG" "$NET" "$TAG" >>/etc/hosts
  if command -v ping >/dev/null; then timeout 10 ping -c1 -W2 "$NET.2" >/dev/null 2>&1 || log "warning: ping $NET.2 failed"; fi
}

start_munge() {
  install -d -m 0755 -o munge -g munge "$S/munge"
  if command -v mungekey >/dev/null; then
    mungekey -c -f -k "$S/munge/munge.key" >/dev/null
  else
    dd if=/dev/urandom of="$S/munge/munge.key" bs=1 count=1024 status=none
  fi
  chown munge:munge "$S/munge/munge.key"; chmod 0400 "$S/munge/munge.key"
  runuser -u munge -- munged --socket="$MUNGE_SOCK" --key-file="$S/munge/munge.key" \
    --pid-file="$S/munge/munged.pid" --seed-file="$S/munge/munged.seed" \
    --log-file="$S/munge/munged.log" --num-threads=4
  for _ in $(seq 40); do
    timeout 5 munge -S "$MUNGE_SOCK" -n 2>/dev/null | timeout 5 unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "munged did not come up"
}

diagnostics() {
  log "---- diagnostics ----"
  status >&2 || true
  local f
  for f in "$S/log/slurmctld.stderr" "$S/log/slurmctld.log" "$S/log/slurmd-node1.log" "$S/log/slurmd-node2.log" \
           "$S/log/slurmd-node1.stderr" "$S/log/slurmd-node2.stderr" "$S/munge/munged.log"; do
    [ -e "$f" ] && { echo "==== tail -n 60 $f" >&2; tail -n 60 "$f" >&2; }
  done
}

on_up_exit() { # any failure after cleanup started: diagnostics, then undo the partial cluster
  local rc=$?
  [ $rc -eq 0 ] && return 0
  trap - EXIT
  set +e
  log "'up' failed (rc=$rc)"
  diagnostics
  if [ "${DTASK_SLURM_KEEP_ON_FAIL:-0}" = 1 ]; then
    log "DTASK_SLURM_KEEP_ON_FAIL=1: leaving the partial cluster running"
  else
    log "tearing the partial cluster down (DTASK_SLURM_KEEP_ON_FAIL=1 keeps it)"
    stop_all
  fi
  exit $rc
}

up() {
  local t0=$SECONDS
  ensure_packages
  log "cleaning leftover state"
  stop_all
  trap on_up_exit EXIT
  rm -rf "$S"
  mkdir -p "$S"/{state,spool/node1,spool/node2,run,log}
  chmod 0755 "$S"
  write_conf
  mkdir -p /etc/slurm
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    mv -f /etc/slurm/slurm.conf /etc/slurm/slurm.conf.dtask-bak
    log "moved existing /etc/slurm/slurm.conf to /etc/slurm/slurm.conf.dtask-bak"
  fi
  ln -sfn "$CONF" /etc/slurm/slurm.conf
  setup_net
  start_munge
  log "starting slurmctld"
  timeout 30 slurmctld -f "$CONF" >"$S/log/slurmctld.stderr" 2>&1 || die "slurmctld failed to start"
  # node1 gets a private /tmp too: PMIx keeps per-step dirs there (/tmp/spmix_appdir_*), and
  # ones left by killed jobs would make a same-numbered step fail after a restart.
  log "starting slurmd node1 (root netns, own mount+UTS ns, private /tmp)"
  timeout 30 unshare -m -u sh -c \
    "mount -t tmpfs tmpfs /tmp && hostname node1 && exec slurmd -f '$CONF' -N node1" \
    >"$S/log/slurmd-node1.stderr" 2>&1 || die "slurmd node1 failed to start"
  local p; p=$(pidfile_pid "$S/run/slurmd-node1.pid")
  [ -n "$p" ] && readlink "/proc/$p/ns/uts" >"$S/run/node1.uts"
  log "starting slurmd node2 (netns $NS, own mount+UTS ns, private /tmp)"
  timeout 30 nsenter --net="/var/run/netns/$NS" unshare -m -u sh -c \
    "mount -t tmpfs tmpfs /tmp && hostname node2 && exec slurmd -f '$CONF' -N node2" \
    >"$S/log/slurmd-node2.stderr" 2>&1 || die "slurmd node2 failed to start"
  log "waiting up to ${UP_TIMEOUT}s for node1 and node2 to be idle"
  local deadline=$((SECONDS + UP_TIMEOUT)) st
  while :; do
    st=$(timeout 10 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if grep -q 'node1 idle' <<<"$st" && grep -q 'node2 idle' <<<"$st"; then break; fi
    if [ $SECONDS -ge $deadline ]; then
      die "nodes not idle after ${UP_TIMEOUT}s (sinfo: ${st:-no answer})"
    fi
    sleep 1
  done
  trap - EXIT
  log "cluster up in $((SECONDS - t0))s: $st"
  echo "Slurm test cluster is up (nodes node1, node2; ${CPUS} CPUs each; partition debug)." \
       "Use e.g.: srun -N 2 -n 4 /var/tmp/prog  |  sbatch --wait job.sh  (files outside /tmp)." \
       "Logs: $S/log. Stop with: $0 down"
}

status() {
  local rc=0
  echo "state dir: $S"
  echo "slurmctld: $(live_only $(pgrep -x slurmctld) | tr '\n' ' ')"
  echo "slurmd:    $(live_only $(pgrep -x slurmd) | tr '\n' ' ')"
  echo "munged:    $(live_only $(pgrep -f "munged .*--socket=$MUNGE_SOCK") | tr '\n' ' ')"
  echo "netns:     $(ip netns list 2>/dev/null | grep -w "$NS" || echo none)"
  echo "veth:      $(ip -o -4 addr show dev "$IF" 2>/dev/null | awk '{print $4}' || true)"
  echo "hosts:     $(grep -c "$TAG" /etc/hosts || true) tagged line(s)"
  if [ -e "$CONF" ] && timeout 10 sinfo -N -o '%N %P %t %c' 2>/dev/null; then :; else
    echo "sinfo: controller not answering"; rc=1
  fi
  return $rc
}

down() {
  log "tearing down"
  stop_all
  # keep only logs (and smoke.sh's work dir) for post-mortem; 'up' wipes the rest
  find "$S" -mindepth 1 -maxdepth 1 ! -name log ! -name smoke -exec rm -rf {} + 2>/dev/null || true
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
