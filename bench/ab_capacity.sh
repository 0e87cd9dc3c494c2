#!/usr/bin/env bash
# A/B of this checkout against an older one on the same machine, runs alternated:
# by default 4 cameras x 18 fps (72 fps offered) and 8 cameras x 25 fps, over RTSP on loopback.
# Usage: [LOADS="4:18 8:25"] bash bench/ab_capacity.sh OLD_CHECKOUT [rounds] [seconds]
#   LOADS: cameras:fps pairs, fps as `streamd bench --fps` takes it (4:6,14 is 6+14+6+14)
#   OLD_CHECKOUT: e.g. made with `git worktree add /tmp/base <commit>` (with ../shared beside it)
# JSON in bench/out/, summary on stdout. Both run with this checkout's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1"); rounds=${2:-2}; seconds=${3:-30}
python=.venv/bin/python
mkdir -p bench/out
rm -f bench/out/abc-*.json
for round in $(seq "$rounds"); do
  for load in ${LOADS:-4:18 8:25}; do
    for side in old new; do
      set -- ${load/:/ }
      tree=$PWD; [ "$side" = old ] && tree=$old
      (cd "$tree" && PYTHONPATH="$tree" "$OLDPWD/$python" -m streamd bench --cameras "$1" --fps "$2" \
        --duration "$seconds" --warmup 5 --ceiling-seconds 4 \
        --json "$OLDPWD/bench/out/abc-c$1f${2//,/+}-$side-r$round.json" > /dev/null 2>&1)
      echo "round $round cameras $1 fps $2 $side done" >&2
    done
  done
done
"$python" - <<'PY'
import collections, glob, json, statistics as st
rows = collections.defaultdict(list)
for path in glob.glob("bench/out/abc-*.json"):
    r = json.load(open(path))
    key = path.split("abc-")[1].rsplit("-r", 1)[0]
    t, c = r["total"], r["ceiling"]
    rows[key].append((t["processed_fps"], t["processed_fps"] / t["offered_fps"], t["latency_ms"]["p95"],
                      r["process"]["cpu_ms_per_processed_frame"], c["fps"], c.get("cpu_ms_per_frame", float("nan")),
                      t["processed_fps"] / c["fps"],
                      r["process"]["cpu_ms_per_processed_frame"] / c.get("cpu_ms_per_frame", float("nan"))))
print("load-side       processed_fps  processed/offered  p95_ms  cpu_ms/frame  ceiling_fps  model_cpu_ms"
      "  processed/ceiling  cpu/model  runs")
for key, vals in sorted(rows.items()):
    fps, ratio, p95, cpu, ceil, model, cratio, per_model = (st.median(v[i] for v in vals) for i in range(8))
    print(f"{key:<15} {fps:>13.1f} {ratio:>18.3f} {p95:>7.0f} {cpu:>13.1f} {ceil:>12.1f} {model:>13.1f}"
          f" {cratio:>18.3f} {per_model:>10.2f} {len(vals):>5}")
PY
