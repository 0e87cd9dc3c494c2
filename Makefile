# streamd: developer shortcuts; scripts/ holds the real steps so a fresh machine needs only bash.
BIN := .venv/bin

.PHONY: setup demo test check lint typecheck format clean install uninstall

setup:
	@bash scripts/setup.sh

demo:
	@bash scripts/demo.sh

test:
	@bash scripts/test.sh $(PYTEST_ARGS)

# One command for every static check: lint, format, types.
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy streamd
	$(BIN)/hadolint Dockerfile.jetson

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# As root: the package in /opt/streamd/venv, example configs in /etc/streamd (kept if present),
# the systemd units. DESTDIR=/some/root stages it instead.
install:
	@bash scripts/install.sh

# Removes the units and /opt/streamd; leaves /etc/streamd, /var/lib/streamd and the user.
uninstall:
	@bash scripts/uninstall.sh

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .state build
