#!/usr/bin/env bash
# Replication benchmark: produce throughput and latency of a master alone (ASYNC_MASTER, no
# slave), ASYNC_MASTER + slave and SYNC_MASTER + slave, one run each with the same tern-perf
# producer (1 KiB bodies, 64 in flight by default), printed as one markdown table. Fresh data
# directories per run. Never run in CI: it takes a minute and measures the machine.
#
# Environment: BENCH_DIR (scratch directory, default a mktemp dir under /tmp), BENCH_SECS (seconds
# per run, default 10), BENCH_INFLIGHT (default 64), BENCH_SIZE (default 1024), BENCH_THREADS
# (tern-perf executors, default 2), BENCH_BROKER_CORES (per broker, default 1), BENCH_NAMESRV_PORT
# (default 19876), BENCH_BROKER_PORT (master; its HA port is +1; the slave uses +1000), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECS:-10}
inflight=${BENCH_INFLIGHT:-64}
size=${BENCH_SIZE:-1024}
threads=${BENCH_THREADS:-2}
cores=${BENCH_BROKER_CORES:-1}
ns_port=${BENCH_NAMESRV_PORT:-19876}
m_port=${BENCH_BROKER_PORT:-20911}
s_port=$((m_port + 1000))
target=${CARGO_TARGET_DIR:-target}
bin="$target/release"

cargo build --release -p tern-engine --bin tern-namesrv --bin tern-broker
cargo build --release -p tern-perf --bin tern-perf

work=${BENCH_DIR:-$(mktemp -d /tmp/tern-bench-ha.XXXXXX)}
mkdir -p "$work"
# shellcheck source=lib/bench-common.sh
source scripts/lib/bench-common.sh
trap 'cleanup; rm -rf "$work"' EXIT

# broker NAME PORT ROLE ID: starts a broker of broker-bench in the background.
broker() {
  local name=$1 port=$2 role=$3 id=$4
  mkdir -p "$work/$name"
  : >"$work/$name.out"
  "$bin/tern-broker" -n "127.0.0.1:$ns_port" --listen-port "$port" --broker-ip 127.0.0.1 \
    --cores "$cores" --broker-name broker-bench --broker-id "$id" \
    --store-path-root-dir "$work/$name" --default-topic-queue-nums 8 \
    --set "brokerRole=$role" --set registerNameServerPeriod=1000 \
    >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  await_listening "$work/$name.out" "$!"
}

start_namesrv

rows=()
for setup in "ASYNC_MASTER:none" "ASYNC_MASTER:slave" "SYNC_MASTER:slave"; do
  role=${setup%%:*}
  slave=${setup##*:}
  run="$role-$slave"
  broker "master-$run" "$m_port" "$role" 0
  if [[ $slave == slave ]]; then
    broker "slave-$run" "$s_port" SLAVE 1
    sleep 2 # the slave learns its master at its first registration
  fi
  conns=$((inflight < 8 ? inflight : 8))
  per_conn=$(((inflight + conns - 1) / conns))
  report=$("$bin/tern-perf" producer --broker "127.0.0.1:$m_port" --topic "BenchHa" \
    --queues 8 --size "$size" --threads "$threads" --connections "$conns" \
    --concurrency "$per_conn" --duration "$secs")
  echo "$report" | tail -12 >&2
  perf_figures "$report"
  rows+=("| $role | $slave | $((conns * per_conn)) | $tps | $mbs | $p50 | $p99 | $errs |")
  cleanup
  start_namesrv
done

echo
echo "## replication, ${size} B bodies, ${secs} s per run, ${cores} core(s) per broker (latency in ms)"
echo
echo "| master role | slave | in flight | msgs/s | MB/s | p50 | p99 | errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
