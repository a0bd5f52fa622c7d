# Every target sets itself up first on a fresh machine: a virtual environment with raybench and its
# test extras, and (as root) the FUSE libraries from Debian's packages.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.raybench-installed

.PHONY: smoke test test-fast bench lint setup fuse-libs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# Write the install's dirty pages back now, not in the middle of the first run (docs/fuse.md).
	sync
	touch $(STAMP)

fuse-libs:
	@if ldconfig -p | grep -q 'libfuse.so.2' && command -v fusermount >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing libfuse2 and fuse3 (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfuse2 fuse3 >/dev/null; \
	else \
		echo "note: FUSE is not installed and this is not root; runs go on without FUSE."; \
		echo "      To measure FUSE: sudo apt-get install libfuse2 fuse3"; \
	fi

setup: $(STAMP) fuse-libs

smoke: setup
	$(BIN)/raybench smoke

test: setup
	$(BIN)/python -m pytest

# The unit tests only (pure logic: no Ray, no mounts) but the statistical rate checks marked slow:
# under a minute. `make test` (CI) runs everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q -m "not slow"

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
