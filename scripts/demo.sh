#!/usr/bin/env bash
# Run the daemon on the demo configuration and print its results as they arrive.
# Stops after $DEMO_SECONDS seconds when set, else on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/demo/streamd.yaml
bin=.venv/bin
bash scripts/setup.sh

if [ ! -f ../shared/models/yolox_nano.onnx ]; then
  echo "the demo needs ../shared (models/yolox_nano.onnx, data/) beside this repository" >&2
  exit 1
fi
"$bin/streamd" check-config --config "$config"

"$bin/streamd" run --config "$config" --stats-interval 10 &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT INT TERM

echo "--- live view: http://127.0.0.1:9771/ (open it in a browser) ---"
echo "--- results from tcp://127.0.0.1:5556 (streamd subscribe --format brief) ---"
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout --foreground -s INT "$DEMO_SECONDS" "$bin/streamd" subscribe --config "$config" --format brief --connect-timeout 60 || true
else
  "$bin/streamd" subscribe --config "$config" --format brief --connect-timeout 60 || true
fi
