#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 300), one after another,
# growing fuzz/corpus/TARGET; stops at the first crash (the input is saved
# under fuzz/artifacts/TARGET/). Logs go to fuzz/logs/TARGET.log.
#
#   fuzz/run.sh [SECONDS]                  # all targets
#   TARGETS="spec_json" fuzz/run.sh 60     # some of them
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly flags, which the
# stable toolchain accepts under RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
targets=${TARGETS:-"shape_json seed_db profile measurements spec_json spec_stream dsl_macro hf_config"}
export RUSTC_BOOTSTRAP=1
# One thread per search (the streaming search uses rayon), so one core per fuzzer.
export RAYON_NUM_THREADS=1
mkdir -p logs
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t for ${seconds}s"
    # -timeout: an input that takes over 10 s is a failure (a hang), as is
    # one that needs over 2 GiB (-rss_limit_mb).
    # dict/TARGET.dict: the keys and keywords of the format, to reach deeper code.
    cargo fuzz run "$t" "corpus/$t" -- \
        -dict="dict/$t.dict" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || { tail -n 40 "logs/$t.log"; exit 1; }
    grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "logs/$t.log"
done
