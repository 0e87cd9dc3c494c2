#!/usr/bin/env bash
# Debian/Ubuntu packages that streamd needs (run as root).
#   usage: install-system-deps.sh [runtime|all]   (default: all)
# runtime, what the daemon itself uses (make install):
#   - python3-venv: the virtualenv; python3-gi + GStreamer: cameras with a `source.pipeline`
# all, what the tests, demo and benchmarks add:
#   - gst-rtsp-server: the loopback RTSP camera; mosquitto: the real MQTT broker
#   - systemd: systemd-analyze verifies the unit files
#   - chromium: the live view's pages are tested in a real headless browser
# Safe to run again: apt-get skips what is installed.
set -euo pipefail

packages=(
  make python3 python3-venv python3-gi
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
)
if [ "${1:-all}" = all ]; then
  packages+=(
    gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly
    mosquitto mosquitto-clients openssl
    systemd
    chromium
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "streamd needs these Debian packages: ${missing[*]}" >&2
  echo "run as root: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The test fixtures start their own broker; the packaged service is not needed.
if command -v systemctl >/dev/null && systemctl is-active -q mosquitto 2>/dev/null; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
