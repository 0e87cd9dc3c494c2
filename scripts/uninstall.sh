#!/usr/bin/env bash
# `make uninstall`: remove what `make install` added (the units and the program) and leave
# the configuration (/etc/streamd), the state (/var/lib/streamd) and the streamd user.
set -euo pipefail
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/streamd}
manifest=$DESTDIR$PREFIX/install-manifest
if [ ! -f "$manifest" ]; then
  echo "streamd is not installed under $DESTDIR$PREFIX (no $manifest)" >&2
  exit 1
fi
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  # Stop the service and every instance of the template before their units go.
  mapfile -t running < <(systemctl list-units --all --plain --no-legend 'streamd.service' 'streamd@*.service' | awk '{print $1}')
  if [ ${#running[@]} -gt 0 ]; then
    systemctl disable --now "${running[@]}" || true
  fi
  systemctl disable streamd.service >/dev/null 2>&1 || true
fi
while IFS= read -r path; do
  [ -n "$path" ] || continue
  case "$path" in
    /|/etc|/etc/*streamd*/|/usr|/var|/var/lib) echo "refusing to remove $path" >&2; exit 1 ;;
  esac
  if [ -d "$DESTDIR$path" ] && [ "$path" = "$PREFIX" ]; then
    rm -rf -- "$DESTDIR$path" && echo "removed $DESTDIR$path"
  elif [ -f "$DESTDIR$path" ]; then
    rm -f "$DESTDIR$path" && echo "removed $DESTDIR$path"
  fi
done < "$manifest"
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
echo "kept: configuration, state and the streamd user (remove them by hand if you want them gone)"
