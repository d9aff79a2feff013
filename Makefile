# Fluence Portal. The two commands that matter: `make run` and `make test` (see README.md).

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first Python >= 3.12 on the PATH (pyenv shims included).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
DEMO := .demo
OIDC_PROVIDER := tests/oidc/node_modules/.package-lock.json
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: help run test test-fast test-e2e check format lint bench clean python

help:
	@echo "make run    start the portal with the local Fluence sandbox and demo users (Ctrl-C stops)"
	@echo "make test   run every test (installs what it needs)"
	@echo "make check  format, lint, then test"

python:
	@if [ -z "$(PYTHON)" ]; then \
		echo "Fluence Portal needs Python 3.12 or newer, and none was found on the PATH."; \
		echo "Install it (Debian/Ubuntu: apt-get install python3.12 python3.12-venv; pyenv: pyenv install 3.12)"; \
		echo "or point the Makefile at it: make PYTHON=/path/to/python3.12 ..."; \
		exit 1; fi

$(STAMP): requirements.txt requirements-dev.txt | python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

$(DEMO)/env: | $(STAMP)
	@mkdir -p $(DEMO)
	@umask 077; { \
		echo "export SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')"; \
		echo "export FIELD_ENCRYPTION_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"; \
	} > $@
	@echo "Wrote $@ (demo secrets, kept out of git)."

run: $(STAMP) $(DEMO)/env
	@source $(DEMO)/env && export DEBUG=1 FLUENCE_API_URLS=http://127.0.0.1:8099 \
		DATABASE_URL=sqlite:///$(CURDIR)/$(DEMO)/db.sqlite3 && \
		$(PY) manage.py migrate --no-input -v 0 && \
		exec $(PY) manage.py rundemo --addr 127.0.0.1:8000 --sandbox-port 8099

# The local OpenID provider the single sign-on tests sign in through (oidc-provider, from npm).
$(OIDC_PROVIDER): tests/oidc/package.json tests/oidc/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the OpenID Connect tests will be skipped (apt-get install -y nodejs npm)"; fi

# On every core (pytest-xdist). loadgroup keeps the tests marked xdist_group on one worker each: the browser
# tests (one Chromium) and the scale-out tests (two app instances each). `PYTEST_ARGS="-n 0"`: one process.
XDIST := -n auto --dist loadgroup

test: $(STAMP) $(OIDC_PROVIDER)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP) $(OIDC_PROVIDER)
	$(PY) -m pytest $(XDIST) -m "not e2e" $(PYTEST_ARGS)

format: $(STAMP)
	$(PY) -m ruff format .

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

check: format lint test

clean:
	rm -rf $(VENV) $(DEMO) staticfiles .hypothesis

bench: $(STAMP)
	$(PY) tests/bench/bench.py
