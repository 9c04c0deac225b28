#!/usr/bin/env bash
# Broker benchmark: for each CommitLog backend (mmap, direct) x flush mode (ASYNC_FLUSH, SYNC_FLUSH)
# starts a fresh tern-broker (temporary data dir, registered with one tern-namesrv), runs the same
# tern-perf producer at each concurrency (1 KiB bodies) and prints one markdown table, after the raw
# disk figure of dd with O_DIRECT in the same directory. Never run in CI: it takes minutes and
# measures the machine.
#
# Environment: BENCH_DIR (scratch directory, default a mktemp dir under /tmp), BENCH_SECS (seconds
# per run, default 12), BENCH_CONCURRENCY (space-separated sender counts, default "4 64"),
# BENCH_CONFIGS (default "mmap:ASYNC_FLUSH mmap:SYNC_FLUSH direct:ASYNC_FLUSH direct:SYNC_FLUSH"),
# BENCH_SIZE (body bytes, default 1024), BENCH_THREADS (tern-perf executors, default 2),
# BENCH_BROKER_CORES (default 1), BENCH_NAMESRV_PORT (default 19876), BENCH_BROKER_PORT (default
# 20911), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECS:-12}
concurrency=${BENCH_CONCURRENCY:-"4 64"}
configs=${BENCH_CONFIGS:-"mmap:ASYNC_FLUSH mmap:SYNC_FLUSH direct:ASYNC_FLUSH direct:SYNC_FLUSH"}
size=${BENCH_SIZE:-1024}
threads=${BENCH_THREADS:-2}
broker_cores=${BENCH_BROKER_CORES:-1}
ns_port=${BENCH_NAMESRV_PORT:-19876}
broker_port=${BENCH_BROKER_PORT:-20911}
target=${CARGO_TARGET_DIR:-target}
bin="$target/release"

cargo build --release -p tern-engine --bin tern-namesrv --bin tern-broker
cargo build --release -p tern-perf --bin tern-perf

work=${BENCH_DIR:-$(mktemp -d /tmp/tern-bench.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT

# Waits until the process writing $1 printed its "listening on" line. The caller must empty $1
# before starting the process: the redirection of a background job is made by the child, so
# without that this could read the line a previous run left in the same file (the "connection
# refused right after listening" of earlier bench runs).
await_listening() {
  local log=$1 pid=$2 i
  for ((i = 0; i < 200; i++)); do
    grep -q "listening on" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process exited: $log" >&2; return 1; }
    sleep 0.05
  done
  echo "not listening after 10 s: $log" >&2
  return 1
}

echo "## raw disk (dd bs=1M count=1024 oflag=direct in $work)"
dd if=/dev/zero of="$work/dd.tmp" bs=1M count=1024 oflag=direct 2>&1 | tail -1
rm -f "$work/dd.tmp"

: >"$work/namesrv.out"
"$bin/tern-namesrv" --listen "127.0.0.1:$ns_port" --kv-config-path "$work/kv.json" \
  >"$work/namesrv.out" 2>"$work/namesrv.log" &
pids+=($!)
await_listening "$work/namesrv.out" "${pids[0]}"

rows=()
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
  broker_pid=$!
  pids+=("$broker_pid")
  await_listening "$work/broker.out" "$broker_pid"
  for c in $concurrency; do
    conns=$((c < 8 ? c : 8))
    per_conn=$(((c + conns - 1) / conns))
    report=$("$bin/tern-perf" producer --broker "127.0.0.1:$broker_port" --topic "Bench$c" \
      --queues 8 --size "$size" --threads "$threads" --connections "$conns" \
      --concurrency "$per_conn" --duration "$secs")
    echo "$report" | tail -12 >&2
    tps=$(echo "$report" | awk '/^throughput:/ {print $2}')
    mbs=$(echo "$report" | awk '/^throughput:/ {print $4}')
    p50=$(echo "$report" | awk '$1 == "p50" {print $2}')
    p99=$(echo "$report" | awk '$1 == "p99" {print $2}')
    p999=$(echo "$report" | awk '$1 == "p99.9" {print $2}')
    errs=$(echo "$report" | awk '/^messages:/ {print $4}')
    rows+=("| $io $flush | $((conns * per_conn)) | $tps | $mbs | $p50 | $p99 | $p999 | $errs |")
  done
  kill -TERM "$broker_pid"
  wait "$broker_pid" || true
  unset 'pids[${#pids[@]}-1]'
  rm -rf "$data"
done

echo
echo "## tern-broker, ${size} B bodies, ${secs} s per run (latency in ms)"
echo
echo "| config | producers | msgs/s | MB/s | p50 | p99 | p99.9 | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
