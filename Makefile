# streamd: developer shortcuts; scripts/ holds the real steps so a fresh machine needs only bash.
BIN := .venv/bin

.PHONY: setup demo test check lint typecheck format clean

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

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .state
