#!/usr/bin/env bash
# Benchmarks `trace-harness query` over one million NDJSON lines (see BENCHMARKS-query.md).
# Replays the seed scenarios 2,000 times with latency jitter, then repeats that export with
# fresh trace ids and later timestamps until the file holds 1,000,000 lines: replaying
# 200,000 bookings one by one would take an hour and measure the replay, not the query.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/query-bench}
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/trace-harness
"$bin" run scenarios/ --repeat 2000 --vary-latency --format ndjson 2>/dev/null >"$out/base.ndjson"
python3 - "$out/base.ndjson" "$out/1m.ndjson" <<'PY'
import json, sys, datetime
base = [json.loads(l) for l in open(sys.argv[1])]
span_s = 2000 * 600  # the base export covers 2,000 replays ten minutes apart
with open(sys.argv[2], "w") as f:
    n, copy = 0, 0
    while n < 1_000_000:
        for rec in base:
            if n == 1_000_000:
                break
            rec = dict(rec)
            if rec.get("trace_id"):
                tid = f"{copy:08x}" + rec["trace_id"][8:]
                rec["prefix"] = rec["prefix"].replace(rec["trace_id"], tid)
                rec["trace_id"] = tid
            t = datetime.datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
            t += datetime.timedelta(seconds=copy * span_s)
            rec["timestamp"] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            n += 1
        copy += 1
PY
wc -l "$out/1m.ndjson"
ls -l "$out/1m.ndjson"
trace=$(head -1 "$out/1m.ndjson" | python3 -c 'import json,sys; print(json.load(sys.stdin)["trace_id"])')
for q in "trace-operations $trace" failed-calendar booking-duration; do
  echo "== query $q"
  /usr/bin/time -f "%e s elapsed, %M KiB peak RSS" "$bin" query $q "$out/1m.ndjson" --output csv | tail -n 2
done
