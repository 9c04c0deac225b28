#!/usr/bin/env bash
# Builds the release binaries and runs tern-namesrv (127.0.0.1:9876) and tern-broker (port 10911)
# in the foreground, data under ./data. Ctrl-C (or SIGTERM) stops
# both gracefully; if either exits, the other is stopped too.
#
# Environment: TERN_DATA (data directory, default ./data), TERN_NAMESRV_LISTEN (default
# 127.0.0.1:9876), TERN_PROFILE (cargo profile, default release), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${TERN_DATA:-./data}
listen=${TERN_NAMESRV_LISTEN:-127.0.0.1:9876}
profile=${TERN_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
outdir="$target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

cargo build --profile "$profile" -p tern-engine --bin tern-namesrv --bin tern-broker

mkdir -p "$data/namesrv" "$data/broker"
pids=()
# Stops the broker first (it unregisters from the nameserver), then the nameserver.
stop() {
  trap - INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap 'stop; exit 130' INT TERM

"$outdir/tern-namesrv" --listen "$listen" --kv-config-path "$data/namesrv/kvConfig.json" &
pids+=($!)

# Wait until the nameserver accepts connections before starting the broker.
host=${listen%:*}; port=${listen##*:}
[ "$host" = 0.0.0.0 ] && host=127.0.0.1
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then break; fi
  kill -0 "${pids[0]}" 2>/dev/null || { echo "tern-namesrv exited" >&2; exit 1; }
  sleep 0.1
done

"$outdir/tern-broker" --namesrv-addr "$host:$port" --store-path-root-dir "$data/broker" &
pids+=($!)

# Foreground until one exits (or Ctrl-C), then stop the rest.
status=0
wait -n "${pids[@]}" || status=$?
stop
exit "$status"
