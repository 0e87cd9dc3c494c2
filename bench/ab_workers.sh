#!/usr/bin/env bash
# A/B of inference sessions side by side (workers) on this machine, 1 thread each:
# 4 cameras x 10 fps and 8 cameras x 25 fps, alternated runs.
# Usage: bash bench/ab_workers.sh [rounds] [seconds]   (JSON in bench/out/, summary on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}; seconds=${2:-30}
bin=${STREAMD_BIN:-.venv/bin/streamd}
mkdir -p bench/out
for round in $(seq "$rounds"); do
  for load in "4 10" "8 25"; do
    for workers in 1 2; do
      set -- $load
      "$bin" bench --cameras "$1" --fps "$2" --duration "$seconds" --warmup 5 --ceiling-seconds 4 \
        --workers "$workers" --threads 1 ${BENCH_ARGS:-} \
        --json "bench/out/abw-c$1f$2-w$workers-r$round.json" > /dev/null 2>&1
      echo "round $round cameras $1 fps $2 workers $workers done" >&2
    done
  done
done
python3 - <<'PY'
import glob, json, statistics as st, collections
rows = collections.defaultdict(list)
for path in glob.glob("bench/out/abw-*.json"):
    r = json.load(open(path))
    key = path.split("abw-")[1].rsplit("-r", 1)[0]
    t = r["total"]
    rows[key].append((t["processed_fps"], r["ceiling"]["fps"], t["processed_ratio"], t["latency_ms"]["p50"],
                      t["latency_ms"]["p99"], r["process"]["cpu_ms_per_processed_frame"], r["process"]["peak_rss_mb"]))
print("load-workers    processed_fps  ceiling_fps  ceiling_ratio  processed/offered  p50_ms  p99_ms  cpu_ms/frame  peak_rss_mb  runs")
for key, vals in sorted(rows.items()):
    fps, ceil, ratio, p50, p99, cpu, rss = (st.median(v[i] for v in vals) for i in range(7))
    print(f"{key:<15} {fps:>13.1f} {ceil:>12.1f} {fps / ceil:>14.2f} {ratio:>18.3f} {p50:>7.0f} {p99:>7.0f} {cpu:>13.1f} {rss:>12.0f} {len(vals):>5}")
PY
