# Two commands on a fresh machine: `make demo` runs the service end to end, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN := .run

.PHONY: demo test up down migrate lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The service alone (api, worker, Flower, dev tools): no torch.
$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[api,worker,dev]'
	touch $@

# Tests also exercise training/ and export/ (torch, pinned to the CPU build), and espeak-ng.
$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-run
	$(PY) -m pip install -q -e '.[api,worker,export,train,dev]'
	@command -v espeak-ng >/dev/null || scripts/install_system_packages.sh espeak-ng
	touch $@

migrate: $(VENV)/.stamp-run
	$(PY) -m stt_common.migrate

demo: $(VENV)/.stamp-run
	@scripts/ensure_redis.sh
	$(PY) -m stt_common.migrate
	$(PY) scripts/demo.py

test: $(VENV)/.stamp-test
	@scripts/ensure_redis.sh >/dev/null  # the tests start their own redis-server; this installs it if missing
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

up: $(VENV)/.stamp-run migrate
	@scripts/ensure_redis.sh
	@mkdir -p $(RUN)
	@$(VENV)/bin/celery -A worker.celery_app worker -Q transcribe --loglevel INFO \
	  --pidfile $(RUN)/worker.pid --logfile $(RUN)/worker.log --detach
	@setsid $(VENV)/bin/uvicorn api.main:app --host 0.0.0.0 --port 8000 > $(RUN)/api.log 2>&1 & echo $$! > $(RUN)/api.pid
	@setsid $(VENV)/bin/celery -A worker.celery_app flower --port=5555 > $(RUN)/flower.log 2>&1 & echo $$! > $(RUN)/flower.pid
	@echo "api http://localhost:8000/docs  flower http://localhost:5555  logs in $(RUN)/  stop with: make down"

down:
	@for svc in api flower worker; do \
	  if [ -f $(RUN)/$$svc.pid ]; then kill $$(cat $(RUN)/$$svc.pid) 2>/dev/null && echo "stopped $$svc"; rm -f $(RUN)/$$svc.pid; fi; \
	done

lint: $(VENV)/.stamp-test
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(VENV)/.stamp-run
	@scripts/ensure_redis.sh
	$(PY) bench/queue_overhead.py

clean: down
	rm -rf $(RUN) data
