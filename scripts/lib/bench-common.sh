# What scripts/bench.sh and scripts/bench-ha.sh share, sourced by both: the background processes
# they start and stop ($pids, in start order), waiting for a process to listen, starting Tern's
# nameserver and reading the figures of a tern-perf producer report.
#
# The sourcing script sets `bin` (the directory of the tern binaries), `work` (its scratch
# directory) and `ns_port` (the nameserver's port) before calling start_namesrv.

pids=()

# Stops every process of $pids, the most recent first, and forgets them.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  pids=()
}

# Stops the most recently started process (the last of $pids) and forgets it.
stop_last() {
  local pid=${pids[${#pids[@]} - 1]}
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'pids[${#pids[@]}-1]'
}

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

# Waits until 127.0.0.1:$1 accepts connections while process $2 lives (for processes that print
# no parseable line). At most $3 seconds.
await_port() {
  local port=$1 pid=$2 limit=$3 i
  for ((i = 0; i < limit * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Starts tern-namesrv on 127.0.0.1:$ns_port (KV config, output and log in $work), adds it to
# $pids and waits until it listens.
start_namesrv() {
  : >"$work/namesrv.out"
  "$bin/tern-namesrv" --listen "127.0.0.1:$ns_port" --kv-config-path "$work/kv.json" \
    >"$work/namesrv.out" 2>"$work/namesrv.log" &
  pids+=($!)
  await_listening "$work/namesrv.out" "$!"
}

# Sets tps, mbs, p50, p99, p999 and errs from the tern-perf producer report $1 (declare them
# local in the caller to keep them there).
perf_figures() {
  local report=$1
  tps=$(echo "$report" | awk '/^throughput:/ {print $2}')
  mbs=$(echo "$report" | awk '/^throughput:/ {print $4}')
  p50=$(echo "$report" | awk '$1 == "p50" {print $2}')
  p99=$(echo "$report" | awk '$1 == "p99" {print $2}')
  p999=$(echo "$report" | awk '$1 == "p99.9" {print $2}')
  errs=$(echo "$report" | awk '/^messages:/ {print $4}')
}
