#!/usr/bin/env bash
# Fuzzes Tern's decoders of untrusted bytes with cargo-fuzz (libFuzzer, nightly toolchain) and keeps
# the checked-in corpora minimized.
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     RUNS executions per target (default 10000000);
#                                          targets default to all of fuzz/fuzz_targets
#   FUZZ_JOBS=2 scripts/fuzz.sh ...        targets run this many at a time (default 1)
#   FUZZ_SANITIZER=none scripts/fuzz.sh ... build without AddressSanitizer (default address): the
#                                          targets are safe Rust, where ASan finds little that a
#                                          panic would not, and it slows allocation-heavy targets
#                                          (broker_properties) several times
#
# For each target: runs `RUNS` executions seeded with fuzz/corpus/<target> (new inputs go to
# fuzz/work/<target>, crashes to fuzz/artifacts/<target>/), then merges everything back into a
# minimized fuzz/corpus/<target> (set-cover merge on edge coverage). Logs and the executions count: fuzz/work/<target>.log and the
# summary line printed at the end. Every file in fuzz/corpus and fuzz/artifacts is replayed on the
# stable toolchain by engine/tests/fuzz_corpus.rs. Needs: rustup's nightly and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

runs=${1:-10000000}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=($(ls fuzz_targets | sed 's/\.rs$//'))
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
nice -n 10 cargo +nightly fuzz build -O --debug-assertions --sanitizer "${FUZZ_SANITIZER:-address}"
bin_dir=$CARGO_TARGET_DIR/$triple/release

fuzz_one() {
    local t=$1 runs=$2 bin_dir=$3
    mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
    nice -n 10 "$bin_dir/$t" -runs="$runs" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "work/$t" "corpus/$t" >"work/$t.log" 2>&1 || {
        echo "$t: FAILED, see fuzz/work/$t.log and fuzz/artifacts/$t/"
    }
    rm -rf "work/$t.min" && mkdir -p "work/$t.min"
    # Set-cover merge on edge coverage only: a few hundred files per target, not thousands.
    nice -n 10 "$bin_dir/$t" -set_cover_merge=1 -use_counters=0 "work/$t.min" "corpus/$t" "work/$t" \
        >"work/$t.merge.log" 2>&1
    rm -rf "corpus/$t" && mv "work/$t.min" "corpus/$t"
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "work/$t.log" | tail -1)
    echo "$t: ${execs:-?} executions, $(ls "corpus/$t" | wc -l) corpus files, $(ls "artifacts/$t" | wc -l) crashes"
}
export -f fuzz_one
printf '%s\n' "${targets[@]}" |
    xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c 'fuzz_one "$@"' _ {} "$runs" "$bin_dir"
