#!/usr/bin/env bash
# External replays against in-process ones, measured as interleaved rounds of the CLI, so a
# machine whose speed drifts (a shared 2-core VM, a disk that stalls) moves both sides alike:
# per round, every scenario of scenarios/ repeated N times in-process and externally, then as many
# replays of a one-step scenario that does no work (a cron call with nothing due) both ways.
# The idle pair's difference is the fixed cost of an external replay (process start and stop,
# its database, its receiver). A scenario that restarts the service, or crashes it, starts the
# process once more for each such step: a second idle pair with a `restart` step measures what
# one more costs (its difference minus the first pair's). The target excludes process starts,
# so it compares what is left after all of them with in-process.
#
#   bash benches/external.sh [ROUNDS] [REPEAT]      # defaults 5 rounds, --repeat 20
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
repeat=${2:-20}
cargo build --release -q
bin=target/release/trace-harness
service=examples/own-service/service.toml
idle_dir=$(mktemp -d)
trap 'rm -rf "$idle_dir"' EXIT
cat > "$idle_dir/idle.toml" <<'TOML'
description = "one webhook cron call with no job due"
seed = 1

[[timeline]]
at = "0s"
cron = "webhooks"
TOML
cat > "$idle_dir/restart.toml" <<'TOML'
description = "one webhook cron call with no job due, then a restart of the service"
seed = 1

[[timeline]]
at = "0s"
cron = "webhooks"

[[timeline]]
at = "1m"
restart = true
TOML
# Steps of scenarios/ that start the service's process again: a restart, or a crash (the
# process is killed at its crash point and a new one started).
restarts=$(cat scenarios/*.toml | grep -cE '^[[:space:]]*(restart[[:space:]]*=[[:space:]]*true|crash[[:space:]]*=)' || true)
scenario_files=$(ls scenarios/*.toml | wc -l)
replays=$((repeat * scenario_files))
# Milliseconds per replay of one CLI run.
per_replay() {
    local start end
    start=$(date +%s%N)
    CI=true "$bin" run "$@" --jobs 1 > /dev/null
    end=$(date +%s%N)
    awk -v ns=$((end - start)) -v n="$replays" 'BEGIN {printf "%.3f", ns / 1000000 / n}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: > "$idle_dir/results"
for round in $(seq "$rounds"); do
    inside=$(per_replay scenarios/ --repeat "$repeat")
    outside=$(per_replay scenarios/ --repeat "$repeat" --service "$service")
    idle_in=$(per_replay "$idle_dir/idle.toml" --repeat "$replays")
    idle_out=$(per_replay "$idle_dir/idle.toml" --repeat "$replays" --service "$service")
    restart_in=$(per_replay "$idle_dir/restart.toml" --repeat "$replays")
    restart_out=$(per_replay "$idle_dir/restart.toml" --repeat "$replays" --service "$service")
    echo "$inside $outside $idle_in $idle_out $restart_in $restart_out" >> "$idle_dir/results"
    echo "round $round: in-process $inside ms, external $outside ms, idle in-process $idle_in ms, idle external $idle_out ms, idle with a restart in-process $restart_in ms, external $restart_out ms (per replay)"
done
col() { awk "{print \$$1}" "$idle_dir/results" | median; }
inside=$(col 1); outside=$(col 2); idle_in=$(col 3); idle_out=$(col 4); restart_in=$(col 5); restart_out=$(col 6)
# Per round: the fixed cost f, a restart's r, and each scenario replay's share of the restarts.
ratios=$(awk -v k="$restarts" -v n="$scenario_files" \
    '{f = $4 - $3; r = ($6 - $5) - f; printf "%.3f %.3f\n", ($2 - f - r * k / n) / $1, $2 / $1}' "$idle_dir/results")
echo "median per replay: in-process $inside ms, external $outside ms, idle in-process $idle_in ms, idle external $idle_out ms, idle with a restart in-process $restart_in ms, external $restart_out ms"
fixed=$(awk -v a="$idle_out" -v b="$idle_in" 'BEGIN {printf "%.3f", a - b}')
restart_cost=$(awk -v a="$restart_out" -v b="$restart_in" -v f="$fixed" 'BEGIN {printf "%.3f", a - b - f}')
echo "fixed cost of an external replay (idle external - idle in-process), median: $fixed ms"
echo "cost of one more process start (a restart's idle pair minus the first), median: $restart_cost ms; $restarts of the $scenario_files scenarios' steps start the process again"
echo "external without its process starts / in-process, per round: $(echo "$ratios" | awk '{print $1}' | tr '\n' ' ')"
echo "median: $(echo "$ratios" | awk '{print $1}' | median)x; with them: $(echo "$ratios" | awk '{print $2}' | median)x"
