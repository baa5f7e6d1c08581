# tinygrad_act — every target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup test lint format bench experiment sweep report list clean distclean

help:  ## show this help
	@echo "tinygrad_act — see why gradients vanish, explode or flow"
	@echo
	@echo "  make experiment DEPTH=20 ACT=sigmoid   train a deep MLP and show its gradient flow"
	@echo "      variables: DEPTH WIDTH ACT INIT OPT LR MOMENTUM BATCH STEPS DATA SEED DTYPE RESIDUAL NORM CLIP"
	@echo "                 LOG_EVERY EVAL_EVERY OUT FORCE=1  (python -m tinygrad_act experiment --help)"
	@echo "  make sweep ACTS=sigmoid,tanh,relu DEPTHS=5,10,20 SEEDS=0,1 JOBS=2   a grid of runs (or CONFIG=name)"
	@echo "  make report     regenerate experiments/README.md from fresh runs (ONLY=finding to redo one)"
	@echo "  make list       activations, initializers, datasets, optimizers"
	@echo "  make test       run the test suite (warnings are errors)"
	@echo "  make lint       ruff"
	@echo "  make bench      benchmarks (prints a table, writes bench/results.json)"
	@echo "  make setup      create .venv and install (every target does this on demand)"
	@echo "  make clean      remove caches (never runs/);  make distclean  also removes .venv"

# The stamp depends on pyproject.toml: editing dependencies reinstalls on the next make.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,plot,dev]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	# Two pytest workers on two cores: one BLAS thread each, or they fight over the cores.
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -W error -q -n 2 $(TESTS)

lint: $(STAMP)
	$(PY) -m ruff check tinygrad_act tests bench experiments
	$(PY) -m ruff format --check tinygrad_act tests bench experiments

format: $(STAMP)
	$(PY) -m ruff format tinygrad_act tests bench experiments
	$(PY) -m ruff check --fix tinygrad_act tests bench experiments

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) bench/run.py $(if $(ONLY),--only $(ONLY))

# Each variable is passed only when set, so the CLI's documented defaults apply otherwise.
EXPERIMENT_ARGS = $(if $(DEPTH),--depth $(DEPTH)) $(if $(WIDTH),--width $(WIDTH)) \
	$(if $(ACT),--act '$(ACT)') $(if $(INIT),--init '$(INIT)') $(if $(OPT),--optimizer $(OPT)) \
	$(if $(LR),--lr $(LR)) $(if $(MOMENTUM),--momentum $(MOMENTUM)) $(if $(BATCH),--batch-size $(BATCH)) \
	$(if $(STEPS),--steps $(STEPS)) $(if $(DATA),--data '$(DATA)') $(if $(SEED),--seed $(SEED)) \
	$(if $(DTYPE),--dtype $(DTYPE)) $(if $(filter 1 true yes,$(RESIDUAL)),--residual) \
	$(if $(NORM),--norm $(NORM)) $(if $(CLIP),--clip $(CLIP)) $(if $(LOG_EVERY),--log-every $(LOG_EVERY)) \
	$(if $(EVAL_EVERY),--eval-every $(EVAL_EVERY))

experiment: $(STAMP)
	$(PY) -m tinygrad_act experiment $(EXPERIMENT_ARGS) $(if $(OUT),--out '$(OUT)') $(if $(filter 1 true yes,$(FORCE)),--force)

# A sweep: a named config (CONFIG=vanishing_depth) and/or grids; every experiment variable applies to each run.
SWEEP_ARGS = $(if $(CONFIG),'$(CONFIG)') $(if $(ACTS),--acts '$(ACTS)') $(if $(INITS),--inits '$(INITS)') \
	$(if $(DEPTHS),--depths '$(DEPTHS)') $(if $(SEEDS),--seeds '$(SEEDS)') $(if $(WIDTHS),--widths '$(WIDTHS)') \
	$(if $(LRS),--lrs '$(LRS)') $(if $(JOBS),--jobs $(JOBS)) $(if $(SCHEDULER),--scheduler '$(SCHEDULER)') \
	$(if $(SHARD),--shard '$(SHARD)') $(foreach g,$(GRID),--grid '$(g)')

sweep: $(STAMP)
	$(PY) -m tinygrad_act sweep $(SWEEP_ARGS) $(EXPERIMENT_ARGS) $(if $(OUT),--out '$(OUT)')

# The findings report: every finding's sweep (resumable), then experiments/README.md. ONLY=name,name for a few.
report: $(STAMP)
	$(PY) -m tinygrad_act report --jobs $(or $(JOBS),2) $(if $(ONLY),--only '$(ONLY)')

list: $(STAMP)
	$(PY) -m tinygrad_act list

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis .cache build *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
