# Set-up and everyday commands. `make demo` and `make test` install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean cluster-check cluster-up cluster-submit cluster-down

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/sr-backfill demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .demo build *.egg-info

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
