#!/usr/bin/env bash
# Runs every benchmark with short criterion runs (the machine is shared), saves the overhead
# command's output, and regenerates BENCHMARKS.md. One cargo command at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
SHORT=(--warm-up-time 1 --measurement-time 3 --noplot)
mkdir -p target/criterion
# When and on what these figures were measured, for report.py's header.
printf 'date=%s\ncommit=%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" \
    > target/criterion/measured.txt
for bench in span_lifecycle propagation booking_flow replay receive external; do
    cargo bench --bench "$bench" -- "${SHORT[@]}"
done
cargo bench --bench memory
cargo build --release -q
mkdir -p target/criterion/overhead
rm -f target/criterion/overhead/*.txt
# The HTTP measurement five times: report.py judges the median of the five.
for run in "--flows 4000:in-process" "--flows 4000 --http:http-1" "--flows 4000 --http:http-2" \
    "--flows 4000 --http:http-3" "--flows 4000 --http:http-4" "--flows 4000 --http:http-5" \
    "--flows 4000 --http --noise-floor:http-noise-floor"; do
    args=${run%%:*}
    name=${run##*:}
    { echo "trace-harness overhead $args"; CI=1 ./target/release/trace-harness overhead $args 2>/dev/null; } \
        > "target/criterion/overhead/$name.txt"
done
# What tracing costs a service the harness did not write: the own service as a process, and
# the Node service (after `npm ci` there), each process's own CPU time.
{ echo "trace-harness overhead --flows 4000 --service examples/own-service/service.toml"
  CI=1 ./target/release/trace-harness overhead --flows 4000 \
      --service examples/own-service/service.toml 2>/dev/null; } \
    > target/criterion/overhead/service-own.txt
if [ -d examples/node-booking-service/node_modules ]; then
    { echo "trace-harness overhead --flows 2000 --service examples/node-booking-service/service.toml"
      CI=1 ./target/release/trace-harness overhead --flows 2000 \
          --service examples/node-booking-service/service.toml 2>/dev/null; } \
        > target/criterion/overhead/service-node.txt
else
    echo "not measured: the Node service (run npm ci in examples/node-booking-service)" >&2
fi
# External replays against in-process, interleaved CLI rounds (report.py reads the medians).
bash benches/external.sh > target/criterion/external.txt
if command -v valgrind >/dev/null; then
    bash benches/instructions.sh > target/criterion/instructions.txt
    bash benches/instructions.sh --flow > target/criterion/instructions-flow.txt
fi
# Replays as throughput: busy cores, --jobs, 10 000 fault plans, a long run's time and memory.
bash benches/throughput.sh > target/criterion/throughput.txt
python3 benches/report.py
