#!/usr/bin/env bash
# Instructions per span lifecycle (the span_lifecycle bench's unit) under each subscriber,
# counted by callgrind: 11 000 lifecycles minus 1 000, so setup and teardown cancel out.
# Needs valgrind (`apt-get install valgrind`). Instruction counts do not move with the machine's
# load; wall time (criterion) does, so this is the steadier cross-check of the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --example lifecycles
bin=target/release/examples/lifecycles
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per
for setup in trivial capture otel_noop otel_in_memory; do
    small=$(count "$setup" 1000)
    large=$(count "$setup" 11000)
    per[$setup]=$(( (large - small) / 10000 ))
done
printf '%-16s %8s %10s %10s\n' setup instr '÷ floor' '÷ capture'
for setup in trivial capture otel_noop otel_in_memory; do
    awk -v s="$setup" -v n="${per[$setup]}" -v f="${per[trivial]}" -v c="${per[capture]}" \
        'BEGIN { printf "%-16s %8d %9.2f× %9.2f×\n", s, n, n / f, n / c }'
done
