# Two commands do everything on a fresh machine: `make demo` and `make test`. Both are idempotent.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOUNDFONT := /usr/share/sounds/sf2/FluidR3_GM.sf2
APT_PKGS := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fluidsynth fluid-soundfont-gm postgresql prometheus

.PHONY: demo test bench install sysdeps clean-runs mlflow-ui optuna-ui observe

install: $(STAMP)

# torch is installed first and exactly: the local CPU wheel of 2.13.0 avoids several GB of CUDA packages.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	@touch $(STAMP)

# System tools the corpora are made with (speech: espeak-ng for training voices, flite and Festival with its
# recorded festvox voices for tse's held-out unseen_synth set; music: fluidsynth + a GM soundfont), and
# PostgreSQL for the tracking load test (Debian keeps initdb in /usr/lib/postgresql/<v>/bin, off PATH), and
# Prometheus for `make observe`. On a systemd host Debian's package also starts a system Prometheus and node
# exporter on every interface: when this installed them, they are disabled (observe runs its own, on 127.0.0.1).
sysdeps:
	@if ! command -v espeak-ng >/dev/null || ! command -v fluidsynth >/dev/null || [ ! -f $(SOUNDFONT) ] \
	    || ! command -v flite >/dev/null || ! command -v text2wave >/dev/null \
	    || [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] \
	    || ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || ! command -v prometheus >/dev/null; then \
	  echo "[make] installing $(APT_PKGS) with apt"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); HAD_PROM=$$(command -v prometheus || true); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	  if [ -z "$$HAD_PROM" ] && command -v systemctl >/dev/null; then \
	    $$SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true; \
	  fi; \
	fi

demo: install sysdeps
	$(BIN)/python jobs/hpo.py --n_trials 24

test: install sysdeps
	$(BIN)/python -m pytest -q --durations=25 tests

# Every benchmark in its own process (~40 min on 2 shared cores; issue 17 added ~10); JSON in benchmarks/results/latest.json,
# the table in docs/benchmarks.md.
bench: install sysdeps
	$(BIN)/python benchmarks/run_all.py

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

# The sweeps' Optuna studies (optuna.db beside the MLflow store, or $$MLPLATFORM_OPTUNA_STORAGE) in
# optuna-dashboard, on 127.0.0.1 only (docs/sweeps.md).
OPTUNA_PORT ?= 8080
optuna-ui: install
	$(BIN)/python jobs/optuna_ui.py --port $(OPTUNA_PORT)

# Prometheus on 127.0.0.1 over the running Ray's metrics (docs/observability.md); `make observe OBSERVE=stop`
# stops it by its recorded PID, OBSERVE=status shows its targets.
OBSERVE ?= start
observe: install sysdeps
	$(BIN)/python jobs/observe.py $(OBSERVE)

clean-runs:
	rm -rf mlruns.db optuna.db mlartifacts ray_results runs
