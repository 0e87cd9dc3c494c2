#!/usr/bin/env bash
# Let a virtualenv import Debian's PyGObject (python3-gi), and nothing else of the system's
# packages: cameras with a GStreamer `source.pipeline` read their appsink through it, and
# PyGObject has no wheels to pip-install. Works when the venv runs the system's Python.
#   usage: link-system-gi.sh VENV
set -euo pipefail
venv=$1
system_python=/usr/bin/python3
[ -x "$system_python" ] || exit 0
gi_dir=$("$system_python" -c 'import gi, os; print(os.path.dirname(gi.__file__))' 2>/dev/null) || {
  echo "note: python3-gi is not installed; GStreamer pipeline sources will not work" >&2
  exit 0
}
version='import sys; print("%d.%d" % sys.version_info[:2])'
if [ "$("$venv/bin/python" -c "$version")" != "$("$system_python" -c "$version")" ]; then
  echo "note: $venv does not run the system's Python; GStreamer pipeline sources need PyGObject there" >&2
  exit 0
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$venv/system-gi"
ln -sfn "$gi_dir" "$venv/system-gi/gi"
# A relative .pth line is resolved against site-packages, so a staged (DESTDIR) venv works too.
echo "../../../system-gi" > "$site/streamd-system-gi.pth"
