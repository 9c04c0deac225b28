#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the build needs, checks
# formatting, lints with clippy (-D warnings) and runs every test in the workspace.
#
# Clippy and the tests share one build: `cargo clippy` would type-check every dependency a second
# time (metadata-only builds are not reused by `cargo test`), which costs minutes on CI's 2 cores.
# Instead the workspace crates are compiled for the tests by clippy-driver, the same driver
# `cargo clippy` runs, with the same lints denied; dependencies are built once by rustc.
# TERN_SEPARATE_CLIPPY=1 runs the literal `cargo clippy --workspace --all-targets -- -D warnings`
# before the tests instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# glommio's build runs git and compiles liburing with cc.
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need+=(git)
command -v make >/dev/null 2>&1 || need+=(make)
# The web console test (engine/tests/console.rs) drives Debian's chromium with playwright-core.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing build tools: ${need[*]} (install them as root)" >&2
    exit 1
  fi
fi

# playwright-core from the committed lock; it never downloads a browser (check.mjs runs
# /usr/bin/chromium). Reinstalled only when the lock file changed since the last install.
console=engine/tests/console
if ! cmp -s "$console/package-lock.json" "$console/node_modules/.tern-lock" 2>/dev/null; then
  (cd "$console" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$console/package-lock.json" "$console/node_modules/.tern-lock"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ "${TERN_SEPARATE_CLIPPY:-0}" = 1 ] || [ -z "$driver" ]; then
  echo "== cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  echo "== cargo test"
  cargo test --workspace --locked
else
  # cargo test builds every lib, bin, test and example target (all of --all-targets but benches,
  # which the workspace has none of) and runs the doc tests too.
  echo "== cargo test, workspace crates compiled by clippy-driver with -D warnings"
  RUSTC_WORKSPACE_WRAPPER="$driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo test --workspace --locked
fi
