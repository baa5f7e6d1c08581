# tinygrad_act — every target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per set of extras, so each target installs only what it needs: the runs need numpy, tqdm and
# matplotlib; test, lint and bench add their own tools (.venv/.installed-test-plot, ...).
STAMP       := $(VENV)/.installed-plot
TEST_STAMP  := $(VENV)/.installed-test-plot
LINT_STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench-plot
comma := ,

.DEFAULT_GOAL := help
.PHONY: help setup test lint format bench experiment sweep report list show compare browser check-html readme-figures clean distclean

# Variables given on the command line reach the program as data, never as shell text: each is kept exactly as
# typed ($(value): make does not expand a $ in it either) and exported to the recipe's environment, where
# tinygrad_act/makeargs.py maps DEPTH, ACT, OUT, ... to command-line options (and checks RESIDUAL/FORCE).
$(foreach v,$(filter-out MAKEFLAGS,$(.VARIABLES)),$(if $(filter command line,$(origin $(v))),\
	$(eval override $(v) := $$(value $(v)))$(eval export $(v))))
RUN = $(PY) -m tinygrad_act.makeargs

help:  ## show this help
	@echo "tinygrad_act — see why gradients vanish, explode or flow"
	@echo
	@echo "  make experiment DEPTH=20 ACT=sigmoid   train a deep MLP and show its gradient flow"
	@echo "      variables: DEPTH WIDTH ACT INIT OUTPUT_INIT SIGMA_B2 OPT LR MOMENTUM BATCH STEPS DATA SEED DTYPE NORM CLIP"
	@echo "                 LOG_EVERY EVAL_EVERY OUT RESUME, switches RESIDUAL FORCE TENSORBOARD JACOBIAN (1/0, true/false, yes/no)"
	@echo "      PLUGIN=my_acts.py (any target): your module or .py file registering activations, initializers, data"
	@echo "                 (python -m tinygrad_act experiment --help)"
	@echo "  make experiment RESUME=runs/NAME   continue an interrupted run from its checkpoint.npz"
	@echo "  make sweep ACTS=sigmoid,tanh,relu DEPTHS=5,10,20 SEEDS=0,1 JOBS=2   a grid of runs (or CONFIG=name)"
	@echo "      variables: CONFIG ACTS INITS DEPTHS SEEDS WIDTHS LRS JOBS SCHEDULER SHARD OUT,"
	@echo "                 GRID='norm=none,batch residual=0,1' (a KEY=V1,V2 per word), and every experiment"
	@echo "                 variable but FORCE, applied to each run  (python -m tinygrad_act sweep --help)"
	@echo "  make report     regenerate experiments/README.md from fresh runs (ONLY=finding to redo one; JOBS)"
	@echo "                  FULL=1 with ONLY=edge_of_chaos or isometry: also its full grid, rewriting its committed table (slow)"
	@echo "  make list       activations, initializers, datasets, optimizers"
	@echo "  make readme-figures   the pictures in README.md, from fresh runs"
	@echo "  make show RUN_DIR=runs/NAME   print the table and verdict of a finished run"
	@echo "  make compare RUNS=\"runs/a runs/b\" [OUT=file.png]   runs side by side on one scale (sweeps, patterns too)"
	@echo "  make check-html PAGE=runs/NAME/report.html   open a report page in headless chromium (make browser)"
	@echo "  make test       run the test suite (warnings are errors; TESTS=tests/test_x.py for some)"
	@echo "  make lint       ruff, and import-linter for the one-way rule between the parts (ARCHITECTURE.md)"
	@echo "  make bench      benchmarks (prints a table, writes bench/results.json; ONLY=name for one)"
	@echo "  make setup      create .venv and install the runtime (every target installs what it needs on demand)"
	@echo "  make clean      remove caches (never runs/);  make distclean  also removes .venv"
	@echo "  Values are passed as typed (quotes, spaces and \$$ included); a bad value ends with one line, exit 2."

# A stamp depends on pyproject.toml: editing dependencies reinstalls on the next make. .installed-a-b installs
# the package (editable) with the extras a and b. For a quick first run: the venv gets no pip of its own when
# $(PYTHON)'s pip can install into it (pip >= 22.3, --python), and no bytecode is precompiled (Python writes it
# for the modules actually imported).
PIP_INSTALL = install --quiet --disable-pip-version-check --no-compile
$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) $(PIP_INSTALL) -e '.[$(subst -,$(comma),$*)]' 2>/dev/null \
	  || { $(PY) -m ensurepip --upgrade --default-pip >/dev/null && $(PY) -m pip $(PIP_INSTALL) -e '.[$(subst -,$(comma),$*)]'; }
	touch $@

setup: $(STAMP)

test: $(TEST_STAMP)
	# Two pytest workers on two cores: one BLAS thread each, or they fight over the cores.
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -W error -q -n 2 $(TESTS)

lint: $(LINT_STAMP)
	$(PY) -m ruff check tinygrad_act tests bench experiments
	$(PY) -m ruff format --check tinygrad_act tests bench experiments
	@# the one-way import rule and the numpy-only core (contracts in pyproject.toml; see ARCHITECTURE.md)
	$(VENV)/bin/lint-imports --no-cache

format: $(LINT_STAMP)
	$(PY) -m ruff format tinygrad_act tests bench experiments
	$(PY) -m ruff check --fix tinygrad_act tests bench experiments

bench: $(BENCH_STAMP)
	$(PY) bench/run.py $(if $(ONLY),--only "$$ONLY")

# Each variable is passed only when set, so the CLI's documented defaults apply otherwise (see makeargs.py).
experiment: $(STAMP)
	$(RUN) experiment

# A sweep: a named config (CONFIG=vanishing_depth) and/or grids; every experiment variable applies to each run.
sweep: $(STAMP)
	$(RUN) sweep

# The findings report: every finding's sweep (resumable), then experiments/README.md. ONLY=name,name for a few.
report: $(STAMP)
	$(RUN) report

list: $(STAMP)
	$(RUN) list

show: $(STAMP)
	$(RUN) show

compare: $(STAMP)
	$(RUN) compare

# Debian's chromium, for check-html (needs root or sudo the first time)
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# A report page in a real headless browser: a screenshot beside the page and a check that every image loaded.
check-html: $(STAMP) browser
	$(PY) bench/check_html.py "$$PAGE"

# The pictures in README.md, from fresh runs (fixed settings: nothing here comes from the command line).
README_RUNS := runs/readme
readme-figures: $(STAMP)
	$(PY) -m tinygrad_act experiment --depth 20 --act sigmoid --steps 300 --out $(README_RUNS)/sigmoid --force --no-progress
	$(PY) -m tinygrad_act experiment --depth 20 --act relu --init he_normal --steps 300 --out $(README_RUNS)/relu-he --force --no-progress
	$(PY) -m tinygrad_act compare $(README_RUNS)/sigmoid $(README_RUNS)/relu-he --out experiments/figures/readme_compare.png
	cp $(README_RUNS)/sigmoid/figures/saturation.png experiments/figures/readme_sigmoid_why.png
	cp $(README_RUNS)/sigmoid/figures/histograms.png experiments/figures/readme_sigmoid_histograms.png

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis .cache build *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
