# Set-up and everyday commands. `make demo` and `make test` install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every package at one version, with its hashes (Linux x86_64, Python 3.11, test extras included): the
# same software on every machine and Ray node. The cluster configs and deploy/Dockerfile install from it too.
LOCK   := requirements.lock
UV_VERSION := 0.13.9

.PHONY: install lock demo test clean cluster-check cluster-up cluster-submit cluster-down

install: $(STAMP)

# pip first (at the locked version and hashes: the venv's own pip is slower), then the lock, then the
# project itself without dependencies (they all come from the lock).
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	sed -n '/^pip==/,/[^\\]$$/p' $(LOCK) > $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate the lock after changing dependencies in pyproject.toml or requirements.in (needs PyPI).
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml requirements.in --extra test --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
	  --quiet -o $(LOCK)

demo: install
	$(BIN)/sr-backfill demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-lock .demo build *.egg-info

# --- Ray cluster (see ray-cluster.yaml and docs/RUNBOOK.md) -----------------------------------------
CLUSTER_YAML ?= ray-cluster.yaml
RAY_API_SERVER_ADDRESS ?= http://127.0.0.1:8265
ARGS ?=

cluster-check:
	@if grep -n "PLACEHOLDER" $(CLUSTER_YAML); then \
	  echo "$(CLUSTER_YAML) still has placeholders (above): fill in head_ip, worker_ips and auth first." >&2; exit 2; fi

cluster-up: install cluster-check
	$(BIN)/ray up -y $(CLUSTER_YAML)

# Submits through the jobs API (tunnel it: ssh -N -L 8265:127.0.0.1:8265 user@head). The database URL
# comes from the nodes' ~/.sr-backfill/db.env, never from this command line.
cluster-submit: install
	RAY_AUTH_MODE=token $(BIN)/ray job submit --address $(RAY_API_SERVER_ADDRESS) --working-dir . \
	  --runtime-env-json '{"excludes": [".venv", ".git", ".demo"]}' -- python -m jobs.backfill $(ARGS)

cluster-down: install cluster-check
	$(BIN)/ray down -y $(CLUSTER_YAML)

# --- Benchmark (issue 5; docs/SCALING.md): the whole job on a throwaway synthetic MariaDB database ---
.PHONY: bench
BENCH_ARGS ?= --scores 200000 --json srb-reports/bench.json

bench: install
	$(BIN)/sr-backfill bench $(BENCH_ARGS)
