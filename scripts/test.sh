#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the build needs, then checks
# formatting, lints with clippy -D warnings and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# glommio's build runs git and compiles liburing with cc.
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need+=(git)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "missing build tools: ${need[*]} (install them as root)" >&2
    exit 1
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
