# tinygrad_act — every target sets up its own virtual environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help setup test lint format bench experiment sweep report list show compare browser check-html readme-figures readme notebook clean distclean

# Variables given on the command line reach the program as data, never as shell text: each is kept exactly as
# typed ($(value): make does not expand a $ in it either) and exported to the recipe's environment, where
# tinygrad_act/makeargs.py maps DEPTH, ACT, OUT, ... to command-line options (and checks RESIDUAL/FORCE).
# Their names go along, so that makeargs refuses one the target does not read (ACTIVATION=relu: "did you mean
# ACT?"); taken first, as `override` changes a variable's origin. Under a recursive make (MAKELEVEL > 0) the parent's
# variables arrive as command-line ones too: none is refused there.
export TINYGRAD_ACT_MAKE_VARIABLES := $(if $(filter 0,$(MAKELEVEL)),$(foreach v,$(filter-out MAKEFLAGS,$(.VARIABLES)),\
	$(if $(filter command line,$(origin $(v))),$(v))))
$(foreach v,$(TINYGRAD_ACT_MAKE_VARIABLES),$(eval override $(v) := $$(value $(v)))$(eval export $(v)))

# The Makefile's own machinery: `override`, so that a variable of that name on the command line changes nothing
# here (makeargs refuses it: make compare RUN=x asks "did you mean RUNS?").
override comma := ,

# One stamp per set of extras, so each target installs only what it needs: the runs need numpy, tqdm and
# matplotlib; test, lint and bench add their own tools (.venv/.installed-test-plot, ...). A switch that needs an
# extra installs it on demand: TENSORBOARD=1 adds tensorboardX, DATA=mnist1d_official the mnist1d package, ENGINE=torch
# PyTorch.
# (A switch is on for 1, true or yes in any case, as makeargs reads it; the value is only compared, never run.)
override lowercase = $(subst E,e,$(subst R,r,$(subst S,s,$(subst T,t,$(subst U,u,$(subst Y,y,$(1)))))))
override switched_on = $(filter 1 true yes,$(call lowercase,$(strip $(1))))
override EXTRAS := plot$(if $(call switched_on,$(TENSORBOARD)),-tensorboard)$(if $(filter mnist1d_official%,$(DATA)),-mnist1d)$(if $(filter torch,$(ENGINE)),-torch)
STAMP       := $(VENV)/.installed-$(EXTRAS)
TEST_STAMP  := $(VENV)/.installed-test-plot
LINT_STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench-plot
NOTEBOOK_STAMP := $(VENV)/.installed-notebook
override RUN = $(PY) -m tinygrad_act.makeargs
# Ctrl-C and SIGTERM reach make's caller as they reached the program: a run that exits 130 (143) makes make die
# of SIGINT (SIGTERM) too, so the shell sees 130 (143) rather than make's own error 2. make waits for this shell
# while it handles the signal, and the shell exits once make has taken it (`taken`: the signal no longer pending in
# make's /proc status, checked every 10 ms for at most a second; a second where there is no /proc): a shell that
# ended first would be reaped as a failed recipe, and make would stop with its own error.
override taken = if [ -r /proc/$$PPID/status ]; then i=0; while [ $$i -lt 100 ] && [ $$(( 0x$$(sed -n \
	's/^ShdPnd:[[:space:]]*//p' /proc/$$PPID/status) >> $(1) - 1 & 1 )) = 1 ]; do sleep 0.01; i=$$((i + 1)); done; \
	else sleep 1; fi
define run
@$(1); status=$$?; case $$status in 130) kill -INT $$PPID; $(call taken,2);; 143) kill -TERM $$PPID; $(call taken,15);; esac; exit $$status
endef

help:  ## show this help
	@echo "tinygrad_act — see why gradients vanish, explode or flow"
	@echo
	@echo "  make experiment DEPTH=20 ACT=sigmoid   train a deep MLP and show its gradient flow"
	@echo "      variables: DEPTH WIDTH ACT INIT OUTPUT_INIT SIGMA_B2 OPT LR MOMENTUM BATCH STEPS DATA SEED DTYPE NORM CLIP"
	@echo "                 LOG_EVERY EVAL_EVERY HIST_EVERY OUT RESUME FIGURES, switches RESIDUAL FORCE TENSORBOARD"
	@echo "                 JACOBIAN CAPTURE WIDE (1/0, true/false, yes/no); WIDE=1 prints every column of the layer table"
	@echo "                 FIGURES=1 (all), 0 (none) or those named: FIGURES=gradient_flow,saturation (make list names them)"
	@echo "  make experiment MODEL=rnn CELL=lstm SEQ_LEN=100 DATA=adding   gradient flow through time (CELL: tanh relu"
	@echo "                 lstm gru; DATA: adding copy mnist1d_seq; SEQ_LEN sets T; CELL=lstm:forget_bias=1;"
	@echo "                 TRUNCATE=K: truncated BPTT, gradients reach back at most K steps; WIDTH: the hidden size)"
	@echo "      PLUGIN=my_acts.py (any target): your module or .py file registering activations, initializers, data"
	@echo "                 (python -m tinygrad_act experiment --help)"
	@echo "  make experiment ENGINE=torch [DEVICE=cuda]   the same run trained in PyTorch (the same weights, batches"
	@echo "                 and numbers; make installs torch the first time; DEVICE=cuda where torch sees a GPU)"
	@echo "  make experiment RESUME=runs/NAME   continue an interrupted run from its checkpoint.npz"
	@echo "  make sweep ACTS=sigmoid,tanh,relu DEPTHS=5,10,20 SEEDS=0,1 JOBS=2   a grid of runs (or CONFIG=name)"
	@echo "      variables: CONFIG ACTS INITS DEPTHS SEEDS WIDTHS LRS JOBS SCHEDULER SHARD OUT,"
	@echo "                 GRID='norm=none,batch residual=0,1' (a KEY=V1,V2 per word), and every experiment"
	@echo "                 variable but FORCE, RESUME and WIDE, applied to each run  (python -m tinygrad_act sweep --help)"
	@echo "  make report     regenerate experiments/README.md from fresh runs (ONLY=finding to redo one; JOBS)"
	@echo "                  FULL=1 with ONLY=edge_of_chaos or isometry: also its full grid, rewriting its committed table (slow)"
	@echo "  make list       activations, initializers, datasets, optimizers, cells, figures"
	@echo "  make readme     the sample outputs in README.md, from fresh runs (make readme-figures: its pictures)"
	@echo "  make notebook   run experiments/tutorial.ipynb and store it with its outputs"
	@echo "  make show RUN_DIR=runs/NAME [WIDE=1]   print the table and verdict of a finished run"
	@echo "  make compare RUNS=\"runs/a runs/b\" [OUT=file.png FORCE=1]   runs side by side on one scale (sweeps, patterns"
	@echo "                 too; default: compare-<runs>.png beside the runs, never over a file compare did not write)"
	@echo "  make check-html PAGE=runs/NAME/report.html   open a report page in headless chromium (make browser)"
	@echo "  make test       run the test suite (warnings are errors; TESTS=tests/test_x.py for some)"
	@echo "  make lint       ruff, and import-linter for the one-way rule between the parts (ARCHITECTURE.md)"
	@echo "  make bench      benchmarks (prints a table, writes bench/results.json; ONLY=name for one)"
	@echo "  make setup      create .venv and install the runtime (every target installs what it needs on demand)"
	@echo "  make clean      remove caches (never runs/);  make distclean  also removes .venv"
	@echo "  Values are passed as typed (quotes, spaces and \$$ included); a bad value or a variable the target does"
	@echo "  not read ends with one line, exit 2. Ctrl-C exits 130."

# A stamp depends on pyproject.toml: editing dependencies reinstalls on the next make. .installed-a-b installs
# the package (editable) with the extras a and b. For a quick first run: the venv gets no pip of its own when
# $(PYTHON)'s pip can install into it (pip >= 22.3, --python), and no bytecode is precompiled but that of the
# modules a run imports (tinygrad_act/bytecode.py: Python would write it on first import, unless
# PYTHONDONTWRITEBYTECODE is set; then every run would compile numpy and matplotlib again).
override PIP_INSTALL = install --quiet --disable-pip-version-check --no-compile
$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) $(PIP_INSTALL) -e '.[$(subst -,$(comma),$*)]' 2>/dev/null \
	  || { $(PY) -m ensurepip --upgrade --default-pip >/dev/null && $(PY) -m pip $(PIP_INSTALL) -e '.[$(subst -,$(comma),$*)]'; }
	$(PY) -m tinygrad_act.bytecode >/dev/null
	touch $@

setup: $(STAMP)

test: $(TEST_STAMP)
	@$(RUN) check test
	# Two pytest workers on two cores: one BLAS thread each, or they fight over the cores. Bytecode is written
	# (PYTHONDONTWRITEBYTECODE emptied): else each worker rewrites the asserts of every test module again (~5 s).
	# worksteal: a worker that runs out takes tests queued for the other, so both end together (0.0-0.6 s apart in
	# four runs; 1.0-3.0 s with xdist's default, which leaves each worker its own queue to the end).
	PYTHONDONTWRITEBYTECODE= OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -W error -q -n 2 --dist worksteal $(TESTS)

lint: $(LINT_STAMP)
	$(PY) -m ruff check tinygrad_act tests bench experiments
	$(PY) -m ruff format --check tinygrad_act tests bench experiments
	@# the one-way import rule and the numpy-only core (contracts in pyproject.toml; see ARCHITECTURE.md)
	$(VENV)/bin/lint-imports --no-cache

format: $(LINT_STAMP)
	$(PY) -m ruff format tinygrad_act tests bench experiments
	$(PY) -m ruff check --fix tinygrad_act tests bench experiments

bench: $(BENCH_STAMP)
	@$(RUN) check bench
	$(PY) bench/run.py $(if $(ONLY),--only "$$ONLY")

# Each variable is passed only when set, so the CLI's documented defaults apply otherwise (see makeargs.py).
experiment: $(STAMP)
	$(call run,$(RUN) experiment)

# A sweep: a named config (CONFIG=vanishing_depth) and/or grids; every experiment variable applies to each run.
sweep: $(STAMP)
	$(call run,$(RUN) sweep)

# The findings report: every finding's sweep (resumable), then experiments/README.md. ONLY=name,name for a few.
report: $(STAMP)
	$(call run,$(RUN) report)

list: $(STAMP)
	$(call run,$(RUN) list)

show: $(STAMP)
	$(call run,$(RUN) show)

compare: $(STAMP)
	$(call run,$(RUN) compare)

# Debian's chromium, for check-html (needs root or sudo the first time)
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# A report page in a real headless browser: a screenshot beside the page and a check that every image loaded.
check-html: $(STAMP) browser
	@$(RUN) check check-html
	$(PY) bench/check_html.py "$$PAGE"

# The pictures in README.md, from fresh runs (fixed settings: nothing here comes from the command line).
override README_RUNS := runs/readme
readme-figures: $(STAMP)
	$(PY) -m tinygrad_act experiment --depth 20 --act sigmoid --steps 300 --out $(README_RUNS)/sigmoid --force --no-progress
	$(PY) -m tinygrad_act experiment --depth 20 --act relu --init he_normal --steps 300 --out $(README_RUNS)/relu-he --force --no-progress
	$(PY) -m tinygrad_act compare $(README_RUNS)/sigmoid $(README_RUNS)/relu-he --out experiments/figures/readme_compare.png --force
	cp $(README_RUNS)/sigmoid/figures/saturation.png experiments/figures/readme_sigmoid_why.png
	cp $(README_RUNS)/sigmoid/figures/histograms.png experiments/figures/readme_sigmoid_histograms.png
	$(PY) -m tinygrad_act experiment --model rnn --cell gru --seq-len 100 --data adding --width 32 --optimizer adam --lr 0.003 --steps 1000 --log-every 50 --eval-every 250 --out $(README_RUNS)/gru --force --no-progress
	cp $(README_RUNS)/gru/figures/gradient_time.png experiments/figures/readme_time_gru.png

# README's sample outputs, from fresh runs: what `make experiment` prints, written between its sample markers
# (tests/test_readme.py fails when README differs from what the commands print, the run's time aside); pytest
# counts the tests, hence the test extra.
readme: $(TEST_STAMP)
	$(call run,$(PY) experiments/readme.py)

# The tutorial notebook executed top to bottom and stored with its outputs (so it reads on GitHub).
notebook: $(NOTEBOOK_STAMP)
	$(call run,$(PY) experiments/notebook.py)

clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis .cache build *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
