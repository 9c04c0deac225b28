#!/usr/bin/env bash
# Broker benchmark, side by side in one run: Tern for each CommitLog backend (mmap, direct) x
# flush mode (ASYNC_FLUSH, SYNC_FLUSH), then the peer, the rocketmq-rust broker and nameserver
# (crates rocketmq-broker / rocketmq-namesrv, ASYNC_FLUSH and SYNC_FLUSH). Each broker starts
# fresh (temporary data dir, registered with its own nameserver) and gets the same tern-perf
# producer at each concurrency (1 KiB bodies, same flags). Prints the raw disk figure (dd with
# O_DIRECT in the same directory) and the loopback figure (iperf3) measured in the same run, then
# one markdown table. Never run in CI: it takes minutes and measures the machine.
#
# The peer is installed on first use with `cargo install --locked` into BENCH_PEER_ROOT (default
# ~/.cache/tern-bench/peer; 15-25 min on 2 cores), never when CI is set. When it cannot be
# installed or started the table says so, with the reason, and the Tern rows still come out.
# iperf3 is installed with apt-get when missing (as root or through sudo -n); without it the
# loopback line says why it is missing.
#
# Environment: BENCH_DIR (scratch directory, default a mktemp dir under /tmp), BENCH_SECS (seconds
# per run, default 12), BENCH_CONCURRENCY (space-separated sender counts, default "4 64"),
# BENCH_CONFIGS (default "mmap:ASYNC_FLUSH mmap:SYNC_FLUSH direct:ASYNC_FLUSH direct:SYNC_FLUSH"),
# BENCH_PEER_CONFIGS (default "ASYNC_FLUSH SYNC_FLUSH"), BENCH_PEER (auto: install when missing | installed: only if already installed | off;
# default auto),
# BENCH_PEER_ROOT, BENCH_PEER_VERSION (default 1.0.0), BENCH_PEER_TARGET (the install's
# CARGO_TARGET_DIR, default BENCH_PEER_ROOT/target), BENCH_SIZE (body bytes, default 1024),
# BENCH_THREADS (tern-perf executors, default 2), BENCH_BROKER_CORES (default 1),
# BENCH_NAMESRV_PORT (default 19876), BENCH_BROKER_PORT (default 20911), BENCH_IPERF_PORT
# (default 25201), BENCH_DD_MB (default 1024), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECS:-12}
concurrency=${BENCH_CONCURRENCY:-"4 64"}
configs=${BENCH_CONFIGS:-"mmap:ASYNC_FLUSH mmap:SYNC_FLUSH direct:ASYNC_FLUSH direct:SYNC_FLUSH"}
peer_configs=${BENCH_PEER_CONFIGS:-"ASYNC_FLUSH SYNC_FLUSH"}
peer_mode=${BENCH_PEER:-auto}
peer_root=${BENCH_PEER_ROOT:-$HOME/.cache/tern-bench/peer}
peer_version=${BENCH_PEER_VERSION:-1.0.0}
peer_target=${BENCH_PEER_TARGET:-$peer_root/target}
size=${BENCH_SIZE:-1024}
threads=${BENCH_THREADS:-2}
broker_cores=${BENCH_BROKER_CORES:-1}
ns_port=${BENCH_NAMESRV_PORT:-19876}
broker_port=${BENCH_BROKER_PORT:-20911}
iperf_port=${BENCH_IPERF_PORT:-25201}
dd_mb=${BENCH_DD_MB:-1024}
target=${CARGO_TARGET_DIR:-target}
bin="$target/release"
peer_ns="$peer_root/bin/rocketmq-namesrv-rust"
peer_broker="$peer_root/bin/rocketmq-broker-rust"

# One invocation: two would unify dependency features differently and rebuild each other.
cargo build --release -p tern-engine --bin tern-namesrv --bin tern-broker -p tern-perf --bin tern-perf

work=${BENCH_DIR:-$(mktemp -d /tmp/tern-bench.XXXXXX)}
mkdir -p "$work"
# shellcheck source=lib/bench-common.sh
source scripts/lib/bench-common.sh
trap 'cleanup; rm -rf "$work"' EXIT

rows=()
# Runs tern-perf against the broker on $broker_port at every concurrency and appends the rows
# for system $1, backend $2, flush $3.
measure() {
  local system=$1 io=$2 flush=$3 c conns per_conn report tps mbs p50 p99 p999 errs
  for c in $concurrency; do
    conns=$((c < 8 ? c : 8))
    per_conn=$(((c + conns - 1) / conns))
    if ! report=$("$bin/tern-perf" producer --broker "127.0.0.1:$broker_port" --topic "Bench$c" \
      --queues 8 --size "$size" --threads "$threads" --connections "$conns" \
      --concurrency "$per_conn" --duration "$secs" 2>"$work/perf.err"); then
      tail -5 "$work/perf.err" >&2
      rows+=("| $system | $io | $flush | $((conns * per_conn)) | failed: $(tail -1 "$work/perf.err") | | | | | |")
      continue
    fi
    echo "$report" | tail -12 >&2
    perf_figures "$report"
    rows+=("| $system | $io | $flush | $((conns * per_conn)) | $tps | $mbs | $p50 | $p99 | $p999 | $errs |")
  done
}

# Installs the peer into $peer_root unless it is there; on failure sets $peer_skip.
peer_skip=""
install_peer() {
  if [ -n "${CI:-}" ]; then
    peer_skip="CI is set: the peer is never installed in CI"
    return
  fi
  if [ "$peer_mode" = off ]; then
    peer_skip="BENCH_PEER=off"
    return
  fi
  [ -x "$peer_ns" ] && [ -x "$peer_broker" ] && return
  if [ "$peer_mode" = installed ]; then
    peer_skip="not installed in $peer_root (BENCH_PEER=installed does not install)"
    return
  fi
  if ! command -v cargo >/dev/null; then
    peer_skip="no cargo to install rocketmq-broker/rocketmq-namesrv with"
    return
  fi
  echo "installing rocketmq-namesrv and rocketmq-broker $peer_version into $peer_root (once)" >&2
  mkdir -p "$peer_root"
  if ! CARGO_TARGET_DIR="$peer_target" nice cargo install --root "$peer_root" --locked \
    --version "$peer_version" rocketmq-namesrv rocketmq-broker >"$work/peer-install.log" 2>&1; then
    peer_skip="cargo install failed: $(grep -m1 '^error' "$work/peer-install.log" || tail -1 "$work/peer-install.log")"
  fi
}

# The raw loopback TCP figure: one iperf3 stream for 3 s.
loopback() {
  if ! command -v iperf3 >/dev/null; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q iperf3 >"$work/iperf-install.log" 2>&1 || true
  fi
  if ! command -v iperf3 >/dev/null; then
    echo "iperf3 missing and could not be installed (see apt-get install iperf3)"
    return
  fi
  iperf3 -s -p "$iperf_port" >"$work/iperf-server.log" 2>&1 &
  local server=$! i out=""
  # Retry while the server comes up (a probe connection would count as a test for iperf3).
  for ((i = 0; i < 50; i++)); do
    out=$(iperf3 -c 127.0.0.1 -p "$iperf_port" -t 3 -f g 2>&1) && break
    sleep 0.1
  done
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  echo "$out" | awk '/sender$/ {print $(NF-3), $(NF-2); found = 1} END {if (!found) print "iperf3 failed"}'
}

echo "## raw disk (dd bs=1M count=$dd_mb oflag=direct in $work)"
dd if=/dev/zero of="$work/dd.tmp" bs=1M count="$dd_mb" oflag=direct 2>&1 | tail -1
rm -f "$work/dd.tmp"
echo
echo "## loopback TCP (iperf3, 1 stream, 3 s)"
loopback

# Tern.
start_namesrv

for config in $configs; do
  io=${config%%:*}
  flush=${config##*:}
  data="$work/broker-$io-$flush"
  mkdir -p "$data"
  cat >"$work/broker.properties" <<PROPS
storePathRootDir=$data
listenPort=$broker_port
brokerIP1=127.0.0.1
namesrvAddr=127.0.0.1:$ns_port
commitLogIoMode=$io
flushDiskType=$flush
defaultTopicQueueNums=8
PROPS
  : >"$work/broker.out"
  "$bin/tern-broker" -c "$work/broker.properties" --cores "$broker_cores" \
    >"$work/broker.out" 2>"$work/broker.log" &
  pids+=($!)
  await_listening "$work/broker.out" "$!"
  measure tern "$io" "$flush"
  stop_last
  rm -rf "$data"
done
stop_last

# The peer: rocketmq-rust, with its own nameserver on the same port; HOME and ROCKETMQ_HOME
# point into the scratch directory so its logs and stores stay there. Its Java-properties
# reader refuses keys it does not map (defaultTopicQueueNums lives elsewhere; 8 is its default).
# Its store counts blocks reserved for root as used: it takes (blocks - bavail) / blocks
# (rocketmq-store 1.0.0, local_file_message_store/health.rs, DiskSpaceSample::ratio) where Java
# RocketMQ takes used / (used + bavail), i.e. df's Use%, and above 0.90 (diskSpaceWarningLevelRatio
# is capped there) it marks the disk full, fails its start-up readiness check ("store writable")
# and exits with nothing but "core.service.failed". On such a filesystem its stores go to tmpfs
# (/dev/shm) instead, and its rows say "mmap on tmpfs": not comparable with the Tern rows then,
# least of all SYNC_FLUSH (a flush of tmpfs is free).
install_peer
if [ -z "$peer_skip" ]; then
  peer_home="$work/peer"
  mkdir -p "$peer_home/conf"
  # Percent of $1's filesystem the peer counts as used, rounded down.
  peer_disk_used() {
    stat -f -c '%b %a' "$1" | awk '{ print ($1 > 0) ? int(($1 - $2) * 100 / $1) : 100 }'
  }
  peer_store_root="$peer_home"
  peer_io=mmap
  if [ "$(peer_disk_used "$peer_home")" -ge 89 ] && [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(peer_disk_used /dev/shm)" -lt 80 ]; then
    echo "peer: $peer_home is $(peer_disk_used "$peer_home")% used by its measure (blocks - bavail); its stores go to /dev/shm" >&2
    peer_store_root=$(mktemp -d /dev/shm/tern-bench-peer.XXXXXX)
    peer_io="mmap on tmpfs"
  fi
  : >"$work/peer-namesrv.log"
  HOME="$peer_home" ROCKETMQ_HOME="$peer_home" "$peer_ns" --listenPort "$ns_port" \
    --rocketmqHome "$peer_home" --kvConfigPath "$peer_home/kv.json" \
    >"$work/peer-namesrv.log" 2>&1 &
  pids+=($!)
  if ! await_port "$ns_port" "$!" 60; then
    peer_skip="rocketmq-namesrv-rust did not listen on $ns_port: $(tail -1 "$work/peer-namesrv.log")"
    stop_last
  fi
fi
if [ -z "$peer_skip" ]; then
  for flush in $peer_configs; do
    data="$peer_store_root/store-$flush"
    mkdir -p "$data"
    cat >"$peer_home/broker.properties" <<PROPS
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
storePathRootDir=$data
listenPort=$broker_port
brokerIP1=127.0.0.1
namesrvAddr=127.0.0.1:$ns_port
flushDiskType=$flush
autoCreateTopicEnable=true
PROPS
    : >"$work/peer-broker.log"
    HOME="$peer_home" ROCKETMQ_HOME="$peer_home" "$peer_broker" -c "$peer_home/broker.properties" \
      >"$work/peer-broker.log" 2>&1 &
    pids+=($!)
    peer_pid=$!
    # It listens before its readiness check (store writable, listeners, registration with its
    # nameserver), which can still fail and roll everything back: wait for the line it logs
    # once that passed.
    peer_ready=""
    if await_port "$broker_port" "$peer_pid" 60; then
      for ((i = 0; i < 600; i++)); do
        grep -q "started successfully" "$work/peer-broker.log" && { peer_ready=1; break; }
        kill -0 "$peer_pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    if [ -z "$peer_ready" ]; then
      peer_skip="rocketmq-broker-rust did not start on $broker_port: $(sed 's/\x1b\[[0-9;]*m//g' "$work/peer-broker.log" | grep -m1 '^ERROR' || tail -1 "$work/peer-broker.log")"
      stop_last
      rm -rf "$data"
      break
    fi
    measure rocketmq-rust "$peer_io" "$flush"
    stop_last
    rm -rf "$data"
  done
  stop_last
  [ "$peer_store_root" = "$peer_home" ] || rm -rf "$peer_store_root"
fi
if [ -n "$peer_skip" ]; then
  rows+=("| rocketmq-rust | | | | skipped: $peer_skip | | | | | |")
fi

echo
echo "## ${size} B bodies, ${secs} s per run, tern-perf --threads $threads, latency in ms"
echo
echo "| system | backend | flush | producers | msgs/s | MB/s | p50 | p99 | p99.9 | errors |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
