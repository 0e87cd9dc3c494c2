#!/usr/bin/env bash
# Install what is missing, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers: most tests wait on sockets, cameras and clocks; those that measure rates or
# CPU are marked `alone` and run with nothing beside them (tests/conftest.py).
exec .venv/bin/python -m pytest -q -n "${STREAMD_TEST_WORKERS:-2}" "$@"
