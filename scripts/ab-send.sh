#!/usr/bin/env bash
# Interleaved A/B of two tern-broker binaries under the same send load:
#
#   scripts/ab-send.sh OLD_BROKER NEW_BROKER [ROUNDS=3] [SECS=15]
#
# Each round starts OLD then NEW on a fresh store (--cores 2, mmap, ASYNC_FLUSH, port 20941) and
# drives it with `tern-perf producer --queues 8 --connections 8 --concurrency 8` (64 sends in
# flight, 1 KiB bodies) for SECS seconds; prints one line per run: throughput, p99 and p99.9.
# Interleaving spreads the shared machine's noise over both; compare medians. Needs
# target/release/tern-perf (cargo build --release -p tern-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-3} secs=${4:-15}
perf=${CARGO_TARGET_DIR:-target}/release/tern-perf
work=$(mktemp -d /tmp/tern-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
for r in $(seq 1 "$rounds"); do
    for v in old new; do
        bin=$old
        [ "$v" = new ] && bin=$new
        rm -rf "$work/store"
        "$bin" -n 127.0.0.1:1 --listen-port 20941 --broker-ip 127.0.0.1 --cores 2 \
            --store-path-root-dir "$work/store" >"$work/broker.log" 2>&1 &
        pid=$!
        sleep 1.5
        out=$("$perf" producer --broker 127.0.0.1:20941 --topic AB --queues 8 --connections 8 \
            --concurrency 8 --duration "$secs" 2>&1) || true
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        tps=$(sed -n 's/^throughput: \([0-9.]*\) msgs.*/\1/p' <<<"$out")
        p99=$(sed -n 's/^  p99 *\([0-9.]*\) ms/\1/p' <<<"$out")
        p999=$(sed -n 's/^  p99.9 *\([0-9.]*\) ms/\1/p' <<<"$out")
        echo "round $r $v: $tps msgs/s, p99 $p99 ms, p99.9 $p999 ms"
    done
done
