#!/usr/bin/env bash
# A/B of inference threads x pipelining on this machine: 8 cameras x 25 fps, alternated runs.
# Usage: bash bench/ab_threads_pipeline.sh [rounds] [seconds]   (results in bench/out/)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; seconds=${2:-30}
mkdir -p bench/out
for round in $(seq "$rounds"); do
  for cfg in "2 off" "1 on" "1 off" "2 on"; do
    set -- $cfg
    .venv/bin/streamd bench --cameras 8 --fps 25 --duration "$seconds" --warmup 5 --ceiling-seconds 4 \
      --threads "$1" --pipeline "$2" --json "bench/out/ab-t$1-p$2-r$round.json" > /dev/null 2>&1
    echo "round $round threads $1 pipeline $2 done"
  done
done
.venv/bin/python - <<'PY'
import glob, json, statistics as st, collections
rows = collections.defaultdict(list)
for path in glob.glob("bench/out/ab-*.json"):
    r = json.load(open(path))
    key = path.split("ab-")[1].rsplit("-r", 1)[0]
    rows[key].append((r["total"]["processed_fps"], r["ceiling"]["fps"], r["total"]["latency_ms"]["p50"],
                      r["total"]["latency_ms"]["p99"], r["process"]["cpu_ms_per_processed_frame"]))
print("config      processed_fps(median)  ceiling(median)  ratio  p50_ms  p99_ms  cpu_ms/frame  runs")
for key, vals in sorted(rows.items()):
    fps, ceil, p50, p99, cpu = (st.median(v[i] for v in vals) for i in range(5))
    print(f"{key:<11} {fps:>20.1f} {ceil:>16.1f} {fps / ceil:>6.2f} {p50:>7.0f} {p99:>7.0f} {cpu:>13.1f} {len(vals):>5}")
PY
