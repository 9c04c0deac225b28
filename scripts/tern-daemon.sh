# Shared by scripts/mqnamesrv, scripts/mqbroker and scripts/mqshutdown (sourced, not run).
#
# Environment:
#   TERN_LOG_DIR      log folder (default ./logs): <name>.pid, <name>.out (stdout/stderr) and the
#                     daily-rotated <name>.log.YYYY-MM-DD written by the process itself
#   TERN_BIN_DIR      folder holding tern-namesrv and tern-broker (default: target/release, then
#                     target/debug under CARGO_TARGET_DIR or ./target, then $PATH)
#   TERN_START_TIMEOUT  seconds to wait for "listening on" (default 60)
#   TERN_STOP_TIMEOUT   seconds to wait for a graceful stop after SIGTERM (default 60)

log_dir=${TERN_LOG_DIR:-./logs}

# Prints the path of binary $1.
tern_bin() {
  local name=$1 dir
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local target=${CARGO_TARGET_DIR:-$root/target}
  for dir in "${TERN_BIN_DIR:-}" "$target/release" "$target/debug"; do
    if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
      echo "$dir/$name"
      return 0
    fi
  done
  command -v "$name" || { echo "$name not found: build it or set TERN_BIN_DIR" >&2; return 1; }
}

# Prints the pid recorded for $1 if that process is alive.
tern_running_pid() {
  local pidfile="$log_dir/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# tern_start NAME BINARY [ARGS...]: starts BINARY in the background with its pid in
# $log_dir/NAME.pid and output in $log_dir/NAME.out; returns once it prints "listening on".
tern_start() {
  local name=$1 bin=$2
  shift 2
  mkdir -p "$log_dir"
  local pid
  if pid=$(tern_running_pid "$name"); then
    echo "$name is already running (pid $pid, $log_dir/$name.pid)" >&2
    return 1
  fi
  local out="$log_dir/$name.out"
  : >"$out"
  # setsid: the server outlives this shell and gets no SIGHUP from the terminal.
  TERN_LOG_DIR="$log_dir" setsid "$bin" "$@" >>"$out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$log_dir/$name.pid"
  local deadline=$((SECONDS + ${TERN_START_TIMEOUT:-60}))
  while ! grep -q " listening on " "$out"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$log_dir/$name.pid"
      echo "$name exited during start-up; see $out and $log_dir/$name.log.*" >&2
      tail -n 20 "$out" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name did not start in time (pid $pid still running); see $out" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$(grep -m1 " listening on " "$out") (pid $pid, logs in $log_dir)"
}

# tern_stop NAME: SIGTERM, then waits until the process has exited.
tern_stop() {
  local name=$1 pid
  if ! pid=$(tern_running_pid "$name"); then
    echo "no running $name (no live pid in $log_dir/$name.pid)"
    rm -f "$log_dir/$name.pid"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + ${TERN_STOP_TIMEOUT:-60}))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name (pid $pid) did not stop within ${TERN_STOP_TIMEOUT:-60}s" >&2
      return 1
    fi
    sleep 0.1
  done
  rm -f "$log_dir/$name.pid"
  echo "$name (pid $pid) stopped"
}
