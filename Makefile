# Two entry points for a fresh machine (Python >= 3.10): `make demo` and `make test`.
# Each creates the virtual environment .venv when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip
STAMP = $(VENV)/.installed
WORK ?= work/demo
DEMO_ARGS ?=

.PHONY: demo test lint pytest venv clean

$(STAMP): setup.py constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[train,replay,test,ros,fleet]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vae-ood demo --work $(WORK) --force $(DEMO_ARGS)

test: $(STAMP)
	$(MAKE) --no-print-directory lint pytest

lint:
	$(VENV)/bin/flake8 vae_ood_monitor test launch scripts setup.py
	$(VENV)/bin/mypy vae_ood_monitor/core

pytest:
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
