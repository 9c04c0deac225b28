#!/usr/bin/env bash
# Heap allocations per SEND_MESSAGE_V2 of a tern-broker binary, counted with heaptrack:
#
#   scripts/alloc-per-send.sh BROKER
#
# Runs the broker (--cores 1, mmap, ASYNC_FLUSH, port 20961) under heaptrack twice, serving 2,000
# and then 12,000 sends of `tern-perf producer --connections 1 --concurrency 8` (1 KiB bodies);
# the difference in allocation calls divided by 10,000 removes start-up and shutdown. Needs
# heaptrack and target/release/tern-perf.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
perf=${CARGO_TARGET_DIR:-target}/release/tern-perf
work=$(mktemp -d /tmp/tern-alloc.XXXXXX)
trap 'rm -rf "$work"' EXIT
calls() {
    local n=$1 d="$work/$1"
    mkdir -p "$d"
    heaptrack -o "$d/ht" "$bin" -n 127.0.0.1:1 --listen-port 20961 --broker-ip 127.0.0.1 \
        --cores 1 --store-path-root-dir "$d/store" >"$d/broker.log" 2>&1 &
    local pid=$!
    sleep 3
    "$perf" producer --broker 127.0.0.1:20961 --topic Alloc --queues 4 --connections 1 \
        --concurrency 8 --count "$n" >"$d/perf.out" 2>&1
    # The broker alone (its command line starts with the binary; heaptrack's own does not), so
    # heaptrack sees it exit and finishes writing its file before `wait` returns.
    pkill -TERM -f "^$bin .*store-path-root-dir $d/store" || true
    wait "$pid" 2>/dev/null || true
    heaptrack_print "$(ls "$d"/ht*.zst "$d"/ht*.gz 2>/dev/null | head -1)" 2>/dev/null |
        sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p'
}
small=$(calls 2000)
large=$(calls 12000)
echo "allocation calls: $small (2,000 sends), $large (12,000 sends)"
awk -v a="$small" -v b="$large" 'BEGIN { printf "per SEND_MESSAGE_V2: %.1f\n", (b - a) / 10000 }'
