#!/usr/bin/env bash
# Runs every fuzz target for a while, one after the other, and prints one
# summary line per target. Exits 1 if any target crashed (the input is left
# in fuzz/artifacts/<target>/), 0 otherwise; prints "skipped: ..." and exits 0
# when cargo-fuzz is not installed or cannot build here.
#
#   fuzz/run-brief.sh [SECONDS_PER_TARGET] [TARGET...]     (default 10 s, all)
#
# Environment:
#   LAPOR_FUZZ_SANITIZER  address | none (default address, as cargo-fuzz)
#   LAPOR_FUZZ_CORPUS_OUT keep each target's grown corpus in this directory
#                         (default: a scratch dir, removed at the end)
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer, sanitizer coverage);
# only the pinned stable toolchain exists on this project's machines, and
# RUSTC_BOOTSTRAP=1 lets it accept them. The committed seeds in
# fuzz/corpus/<target>/ are read, never written: new inputs go to a scratch
# corpus listed first.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-10}"
shift || true
sanitizer="${LAPOR_FUZZ_SANITIZER:-address}"
all_targets=(fuzz_intake_submit fuzz_add_event fuzz_complaints_requests fuzz_hello
    fuzz_push_batch fuzz_pull_request)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
    exit 0
fi
# The toolchain must take cargo-fuzz's unstable flags; a compiler that does
# not is a missing tool, not a failure of this project.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
probe_flags=(-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4)
if [ "$sanitizer" != none ]; then probe_flags+=("-Zsanitizer=$sanitizer"); fi
if ! echo 'fn main() {}' | rustc "${probe_flags[@]}" --edition 2024 - -o "$probe/probe" \
    >"$probe/log" 2>&1; then
    echo "skipped: this toolchain cannot build libFuzzer targets:"
    sed 's/^/  /' "$probe/log"
    exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$probe" "$scratch"' EXIT
# The targets that call real handlers open throw-away stores under TMPDIR.
export TMPDIR="$scratch"

start=$(date +%s)
cargo fuzz build -s "$sanitizer"
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - start)) s" \
    "(sanitizer $sanitizer, $(rustc --version))"

failed=()
for target in "${targets[@]}"; do
    work="${LAPOR_FUZZ_CORPUS_OUT:+$LAPOR_FUZZ_CORPUS_OUT/$target}"
    work="${work:-$scratch/corpus/$target}"
    mkdir -p "$work"
    log="$scratch/$target.log"
    status=0
    cargo fuzz run -s "$sanitizer" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=4096 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    seeds=$(find "corpus/$target" -type f | wc -l)
    grown=$(find "$work" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target ok: ${runs:-?} runs in ${took:-?} s, 0 crashes," \
            "coverage ${cov:-?}, corpus $seeds seeds + $grown new"
    else
        failed+=("$target")
        echo "fuzz: $target FAILED (exit $status) after ${runs:-?} runs:"
        grep -m1 -A1 'panicked at' "$log" | sed 's/^/  /' || true
        echo "  log tail:"
        tail -25 "$log" | sed 's/^/  /'
        ls -1 "artifacts/$target" 2>/dev/null | sed "s|^|  artifact: fuzz/artifacts/$target/|"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, 0 crashes"
