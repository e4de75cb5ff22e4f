#!/usr/bin/env bash
# Replays as throughput: whether a run keeps the cores busy, how `--jobs` moves it, how the
# fault plans' search scales, and whether a long run stays linear and bounded (time, peak
# memory, sockets left in TIME_WAIT). Release builds, standard output discarded, `CI=true` so
# that no progress is drawn. One line per measurement, `key value …`, which report.py reads.
#
#   bash benches/throughput.sh [LONG_REPEAT]     # default 6250: 50 000 replays of 8 scenarios
#
# Run it on a quiet machine: wall time against CPU time is what it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
long=${1:-6250}
cargo build --release -q
cargo test --release -q --test fault_plans --no-run 2>/dev/null
bin=target/release/trace-harness
plans=$(ls -t target/release/deps/fault_plans-* | grep -v '\.d$' | head -1)
cores=$(nproc)
scenarios=$(ls scenarios/*.toml | wc -l)
echo "cores $cores"
echo "scenarios $scenarios"
time_wait() { ss -tan state time-wait | tail -n +2 | wc -l; }
# `label wall user sys max_rss_kb replays time_wait_after`, after waiting for the sockets the
# previous runs left to expire only if they are many (they slow every bind and connect).
measure() {
    local label=$1 replays=$2
    shift 2
    local out
    out=$(CI=true /usr/bin/time -f '%e %U %S %M' "$@" 2>&1 >/dev/null | tail -1)
    echo "$label $out $replays $(time_wait)"
}
# Whether the default keeps the cores busy, and what other `--jobs` values do.
for round in 1 2 3; do
    measure "run_default" $((100 * scenarios)) $bin run scenarios/ --repeat 100 --format ndjson
    for jobs in 1 2 3 4 8; do
        measure "run_jobs_$jobs" $((100 * scenarios)) \
            $bin run scenarios/ --repeat 100 --format ndjson --jobs "$jobs"
    done
done
# Ten thousand fault plans, the seed the issue measured.
for round in 1 2; do
    FAULT_PLAN_CASES=10000 FAULT_PLAN_SEED=11 measure "fault_plans" 10000 \
        "$plans" every_fault_plan_keeps_the_invariants
done
# Linear and bounded: ten times the replays.
measure "run_long_short" $((long / 10 * scenarios)) \
    $bin run scenarios/ --repeat $((long / 10)) --format ndjson
measure "run_long" $((long * scenarios)) $bin run scenarios/ --repeat "$long" --format ndjson
