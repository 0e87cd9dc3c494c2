#!/usr/bin/env bash
# Everything streamd needs on this machine: Debian packages (when root) and .venv.
# Safe to run again; it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

python=${PYTHON:-python3}
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
bash scripts/link-system-gi.sh .venv
