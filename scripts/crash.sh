#!/usr/bin/env bash
# SIGKILL crash harness (engine/tests/crash.rs) against a release-built broker:
#
#   scripts/crash.sh [ROUNDS] [SEED]     default 100 rounds, a time-based seed
#   CRASH_PROFILE=dev scripts/crash.sh   kill the dev-profile broker instead
#
# The broker under test is `cargo build --release --bin tern-broker` (no dev-dependencies, so the
# compat test's client crates are not rebuilt in release); the harness that drives and checks it is
# the dev-profile test, pointed at that binary through TERN_CRASH_BROKER.
#
# Each round starts tern-broker (SYNC_FLUSH, 2 cores) on the same store, checks that every message
# acknowledged so far is readable byte-exact at its queue offset with no holes or duplicates, lets two
# producers send, and SIGKILLs the broker at a random moment. Prints the seed, rounds and counts.
set -euo pipefail
cd "$(dirname "$0")/.."
export TERN_CRASH_ROUNDS=${1:-100}
if [ -n "${2:-}" ]; then export TERN_CRASH_SEED=$2; fi
if [ "${CRASH_PROFILE:-release}" = release ]; then
    cargo build --release -p tern-engine --bin tern-broker
    export TERN_CRASH_BROKER="${CARGO_TARGET_DIR:-$PWD/target}/release/tern-broker"
fi
cargo test -p tern-engine --test crash -- --nocapture 2>&1 |
    grep -E "TERN_CRASH_SEED|survived|panicked|test result|lost|hole|duplicate"
