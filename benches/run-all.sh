#!/usr/bin/env bash
# Runs every benchmark with short criterion runs (the machine is shared), saves the overhead
# command's output, and regenerates BENCHMARKS.md. One cargo command at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=(--warm-up-time 1 --measurement-time 3 --noplot)
for bench in span_lifecycle propagation booking_flow replay; do
    cargo bench --bench "$bench" -- "${SHORT[@]}"
done
cargo bench --bench memory
cargo build --release -q
mkdir -p target/criterion/overhead
for args in "--flows 2000" "--flows 2000 --http" "--flows 2000 --http --noise-floor"; do
    name=$(echo "$args" | tr -d ' -')
    { echo "trace-harness overhead $args"; CI=1 ./target/release/trace-harness overhead $args 2>/dev/null; } \
        > "target/criterion/overhead/$name.txt"
done
if command -v valgrind >/dev/null; then
    bash benches/instructions.sh > target/criterion/instructions.txt
fi
python3 benches/report.py
