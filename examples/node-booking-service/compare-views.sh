#!/usr/bin/env bash
# Replays every scenario in-process, against the harness's own service run as a process
# (examples/own-service/service.toml) and against this Node service, in each view, and says
# which outputs are byte-identical.
#
#   examples/node-booking-service/compare-views.sh [path/to/trace-harness]
#
# Run from anywhere; the scenarios are the repository's. Needs `npm ci` done here first.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
harness="${1:-${TRACE_HARNESS:-trace-harness}}"
node_service="$here/service.toml"
own_service="$repo/examples/own-service/service.toml"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cd "$repo" || exit 2
status=0
for scenario in scenarios/*.toml; do
  name="$(basename "$scenario" .toml)"
  for view in tree logs timings request-ids all json; do
    "$harness" run "$scenario" --format "$view" > "$out/in-process" 2>&1
    "$harness" run "$scenario" --format "$view" --service "$own_service" > "$out/own" 2>&1
    "$harness" run "$scenario" --format "$view" --service "$node_service" > "$out/node" 2>&1
    if cmp -s "$out/in-process" "$out/node"; then in_process=equal; else in_process=differs; fi
    if cmp -s "$out/own" "$out/node"; then own=equal; else own=differs; status=1; fi
    printf '%-18s %-12s vs in-process: %-8s vs own service as a process: %s\n' "$name" "$view" "$in_process" "$own"
  done
done
exit "$status"
