#!/usr/bin/env bash
# SIGKILL crash harness (engine/tests/crash.rs) on a release build:
#
#   scripts/crash.sh [ROUNDS] [SEED]     default 100 rounds, a time-based seed
#   CRASH_PROFILE=dev scripts/crash.sh   use the (already optimized) dev profile: a release build of
#                                        the engine's tests also builds the compat test's client
#                                        crates in release, which takes many minutes cold
#
# Each round starts tern-broker (SYNC_FLUSH, 2 cores) on the same store, checks that every message
# acknowledged so far is readable byte-exact at its queue offset with no holes or duplicates, lets two
# producers send, and SIGKILLs the broker at a random moment. Prints the seed, rounds and counts.
set -euo pipefail
cd "$(dirname "$0")/.."
export TERN_CRASH_ROUNDS=${1:-100}
if [ -n "${2:-}" ]; then export TERN_CRASH_SEED=$2; fi
profile=()
if [ "${CRASH_PROFILE:-release}" = release ]; then profile=(--release); fi
cargo test "${profile[@]}" -p tern-engine --test crash -- --nocapture 2>&1 |
    grep -E "TERN_CRASH_SEED|survived|panicked|test result|lost|hole|duplicate"
