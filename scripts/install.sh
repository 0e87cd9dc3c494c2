#!/usr/bin/env bash
# `make install`: streamd as a system service (run as root).
#   /opt/streamd/venv        the package in its own virtualenv (PREFIX)
#   /etc/streamd             example configuration, never overwriting a file that exists (CONFDIR)
#   /etc/systemd/system      streamd.service and streamd@.service (UNITDIR)
#   user streamd             system user the service runs as, in the video/render groups
# DESTDIR stages everything under another root (packaging, tests): no user, no systemctl.
# MODEL=path copies a model into CONFDIR/models when none is there; by default the
# YOLOX-Nano of ../shared/models, when that exists.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/streamd}
CONFDIR=${CONFDIR:-/etc/streamd}
UNITDIR=${UNITDIR:-/etc/systemd/system}
# The distribution's interpreter: the service user must be able to run it (a pyenv or a
# virtualenv under /root is not readable to it).
python=${PYTHON:-/usr/bin/python3}
manifest=$DESTDIR$PREFIX/install-manifest

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  echo "make install needs root (or DESTDIR=... to stage it elsewhere)" >&2
  exit 1
fi
if [ -z "$DESTDIR" ]; then
  bash scripts/install-system-deps.sh runtime
fi

echo "streamd: virtualenv in $DESTDIR$PREFIX/venv"
mkdir -p "$DESTDIR$PREFIX"
[ -x "$DESTDIR$PREFIX/venv/bin/python" ] || "$python" -m venv "$DESTDIR$PREFIX/venv"
"$DESTDIR$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
# setuptools builds in ./build and would package stale modules left there by an older build.
rm -rf "$repo/build"
"$DESTDIR$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check "$repo"
rm -rf "$repo/build"
bash scripts/link-system-gi.sh "$DESTDIR$PREFIX/venv"
if [ -n "$DESTDIR" ]; then
  # pip wrote the staging path into the scripts' shebangs and activate files: make the
  # tree work once it is moved to $PREFIX (a package's files, a container layer).
  grep -rlI --null -F "$DESTDIR$PREFIX" "$DESTDIR$PREFIX/venv/bin" "$DESTDIR$PREFIX/venv/pyvenv.cfg" \
    | xargs -0 -r sed -i "s|$DESTDIR$PREFIX|$PREFIX|g"
fi
cp README.md "$DESTDIR$PREFIX/README.md"

echo "streamd: configuration in $DESTDIR$CONFDIR (existing files are kept)"
# Camera files hold camera passwords: readable by root and the service's group only,
# whatever the umask (make install may run under any).
install -d -m 0750 "$DESTDIR$CONFDIR" "$DESTDIR$CONFDIR/cameras" "$DESTDIR$CONFDIR/models"
copy_new() {  # copy_new SRC DEST: only when DEST does not exist yet
  if [ -e "$2" ]; then
    echo "  kept $2"
  else
    install -m 0640 "$1" "$2"
    echo "  added $2"
  fi
}
# The example daemon file: the model by its absolute path (so a copy for a streamd@NAME
# instance still finds it), the state folder left to systemd (StateDirectory=, one per
# instance), and the example sinks commented out (they would connect to brokers that may
# not exist).
sed -e "s|^\\(    path: \\).*yolox_nano.onnx.*|\\1$CONFDIR/models/yolox_nano.onnx|" \
    -e 's|^state_dir: .*|# state_dir: /var/lib/streamd     # default: $STATE_DIRECTORY under systemd (per instance)|' \
    -e '/^sinks:/,$s|^|# |' \
    configs/streamd.yaml > "$DESTDIR$PREFIX/streamd.yaml.example"
copy_new "$DESTDIR$PREFIX/streamd.yaml.example" "$DESTDIR$CONFDIR/streamd.yaml"
# Camera examples end in .example so that the service starts with none until you add yours;
# their sinks are commented out like the daemon file's, so a copy passes check-config as it is.
for cam in configs/cameras/*.yaml; do
  sed -e '/^sinks:/,$s|^|# |' "$cam" > "$DESTDIR$PREFIX/$(basename "$cam").example"
  copy_new "$DESTDIR$PREFIX/$(basename "$cam").example" "$DESTDIR$CONFDIR/cameras/$(basename "$cam").example"
done
model=${MODEL:-../shared/models/yolox_nano.onnx}
if [ -f "$model" ]; then
  copy_new "$model" "$DESTDIR$CONFDIR/models/yolox_nano.onnx"
fi

echo "streamd: units in $DESTDIR$UNITDIR"
install -d "$DESTDIR$UNITDIR"
units=()
for unit in systemd/streamd.service systemd/streamd@.service; do
  dest=$DESTDIR$UNITDIR/$(basename "$unit")
  sed -e "s|/opt/streamd/|$PREFIX/|g" \
      -e "s|/etc/streamd/|$CONFDIR/|g" "$unit" > "$dest"
  chmod 0644 "$dest"
  units+=("$UNITDIR/$(basename "$unit")")
done

# What uninstall removes: the units and the program. Configuration and state stay.
printf '%s\n' "${units[@]}" "$PREFIX" > "$manifest"

if [ -z "$DESTDIR" ]; then
  if ! id streamd >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/streamd --no-create-home \
      --shell /usr/sbin/nologin --comment "streamd video analytics" streamd
  fi
  for group in video render; do  # cameras and GPUs (Jetson: video)
    if getent group "$group" >/dev/null; then usermod -a -G "$group" streamd; fi
  done
  # The service reads its configuration through its group; only root writes it.
  chgrp -R streamd "$CONFDIR"
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
fi
cat <<EOT
streamd installed. Next:
  1. put camera files in $CONFDIR/cameras/ (see the .example there)
  2. $PREFIX/venv/bin/streamd check-config --config $CONFDIR/streamd.yaml
  3. systemctl enable --now streamd
EOT
