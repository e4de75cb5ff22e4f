#!/usr/bin/env bash
# Instructions counted by callgrind, which do not move with the machine's load the way wall
# time (criterion) does: the steadier cross-check of the ratios in BENCHMARKS.md.
#
#   bash benches/instructions.sh          per span lifecycle (the span_lifecycle bench's unit)
#                                         under the floor, capture and tracing-opentelemetry:
#                                         11 000 lifecycles minus 1 000
#   bash benches/instructions.sh --flow   per calendar-failure booking flow over loopback HTTP,
#                                         traced and untraced, as `overhead` runs them:
#                                         650 flows minus 50 (all threads counted), and the
#                                         64-byte lines of code a flow runs (footprint.py)
#
# Needs valgrind (`apt-get install valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
# count OUT PROGRAM ARGS...: the instructions callgrind counted; OUT keeps them per instruction.
count() {
    local out=$1
    shift
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$out" "$@" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
if [[ "${1:-}" == "--flow" ]]; then
    cargo build --release -q --example flows
    bin=target/release/examples/flows
    # The profiles are kept for the code footprint (benches/footprint.py).
    out=target/criterion/flow-callgrind
    mkdir -p "$out"
    declare -A flow
    for side in untraced traced; do
        small=$(count "$out/$side.50" "$bin" "$side" http 50)
        large=$(count "$out/$side.650" "$bin" "$side" http 650)
        flow[$side]=$(( (large - small) / 600 ))
    done
    printf '%-10s %12s\n' side 'instr / flow'
    printf '%-10s %12d\n' untraced "${flow[untraced]}" traced "${flow[traced]}"
    awk -v t="${flow[traced]}" -v u="${flow[untraced]}" \
        'BEGIN { printf "overhead   %+11.2f %%  (traced/untraced %.4f)\n", (t / u - 1) * 100, t / u }'
    python3 benches/footprint.py "$out" 50 650
    exit 0
fi
cargo build --release -q --example lifecycles
bin=target/release/examples/lifecycles
declare -A per
for setup in trivial capture otel_noop otel_in_memory; do
    small=$(count /dev/null "$bin" "$setup" 1000)
    large=$(count /dev/null "$bin" "$setup" 11000)
    per[$setup]=$(( (large - small) / 10000 ))
done
printf '%-16s %8s %10s %10s\n' setup instr '÷ floor' '÷ capture'
for setup in trivial capture otel_noop otel_in_memory; do
    awk -v s="$setup" -v n="${per[$setup]}" -v f="${per[trivial]}" -v c="${per[capture]}" \
        'BEGIN { printf "%-16s %8d %9.2f× %9.2f×\n", s, n, n / f, n / c }'
done
