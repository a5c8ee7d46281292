# Two commands on a fresh machine: `make demo` runs the service end to end, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN := .run

.PHONY: demo test test-fast up down migrate lint licences bench load model clean

# The bundled model's recipe (models/tr-espeak-small/README.md records the run that produced it: about
# 5 minutes on one GPU; without one the Trainer uses the CPU, where 5000 steps take many hours).
MODEL := tr-espeak-small
CORPUS_ARGS := --word-sequences 20000
TRAIN_ARGS := --preset small --max_steps 5000 --per_device_train_batch_size 32 \
  --learning_rate 1e-3 --warmup_steps 500 --weight_decay 0.005 --lr_scheduler_type linear --logging_steps 100 \
  --save_strategy steps --save_steps 1000 --save_total_limit 2 --report_to tensorboard \
  --dataloader_num_workers $(shell nproc) --dataloader_persistent_workers \
  --max_eval_samples 200 --train_sampling_strategy group_by_length --test_splits test,test_heldout_voice --seed 0

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The service alone (api, worker, Flower, dev tools): no torch.
$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[api,worker,client,dev]'
	touch $@

# Tests also exercise training/ and export/ (torch, pinned to the CPU build), and espeak-ng.
$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-run
	$(PY) -m pip install -q -e '.[api,worker,client,export,train,dev]'
	@command -v espeak-ng >/dev/null || scripts/install_system_packages.sh espeak-ng
	touch $@

migrate: $(VENV)/.stamp-run
	$(PY) -m stt_common.migrate

demo: $(VENV)/.stamp-run
	@scripts/ensure_redis.sh
	$(PY) -m stt_common.migrate
	$(PY) scripts/demo.py

test: lint licences
	@scripts/ensure_redis.sh >/dev/null  # the tests start their own redis-server; this installs it if missing
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The inner loop: lint, then every test but the slow end-to-end ones (CI runs `make test`, all of them).
test-fast: lint licences
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

up: $(VENV)/.stamp-run migrate
	@scripts/ensure_redis.sh
	@mkdir -p $(RUN)
	@$(VENV)/bin/celery -A worker.celery_app worker -Q transcribe --loglevel INFO \
	  --pidfile $(RUN)/worker.pid --logfile $(RUN)/worker.log --detach
	@$(VENV)/bin/celery -A worker.webhook_app worker -Q webhooks --pool threads -B --loglevel INFO \
	  -n webhooks@%h --pidfile $(RUN)/webhooks.pid --logfile $(RUN)/webhooks.log --detach
	@# Local use: no API keys unless you ask for them (STT_AUTH_ENABLED=true make up); the api warns.
	@STT_AUTH_ENABLED=$${STT_AUTH_ENABLED:-false} setsid $(PY) -m api.serve --host 127.0.0.1 --port 8000 \
	  > $(RUN)/api.log 2>&1 & echo $$! > $(RUN)/api.pid
	@setsid $(PY) -m worker.flower --address 127.0.0.1 --port 5555 > $(RUN)/flower.log 2>&1 & echo $$! > $(RUN)/flower.pid
	@echo "api http://localhost:8000/docs  flower http://localhost:5555  logs in $(RUN)/  stop with: make down"

down:
	@for svc in api flower worker webhooks; do \
	  if [ -f $(RUN)/$$svc.pid ]; then kill $$(cat $(RUN)/$$svc.pid) 2>/dev/null && echo "stopped $$svc"; rm -f $(RUN)/$$svc.pid; fi; \
	done

# What `make test` checks before its tests (and .pre-commit-config.yaml on each commit).
lint: $(VENV)/.stamp-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The licences of what the api and worker images install, against the allowlist in the script.
licences: $(VENV)/.stamp-test
	$(PY) scripts/check_licences.py

bench: $(VENV)/.stamp-run
	@scripts/ensure_redis.sh
	$(PY) bench/queue_overhead.py
	$(PY) bench/long_audio.py --model models/$(MODEL)
	$(PY) bench/batch_throughput.py

# The Locust load test at 5 and 50 users against a private stack (bench/load.py).
load: $(VENV)/.stamp-run
	@scripts/ensure_redis.sh
	$(PY) -m pip install -q -e '.[load]'
	$(PY) bench/load.py

model: $(VENV)/.stamp-test
	$(PY) -m training.corpus --out build/corpus $(CORPUS_ARGS)
	$(PY) -m training --dataset build/corpus --output_dir build/train/$(MODEL) $(TRAIN_ARGS) \
	  > build/train/$(MODEL).log 2>&1
	$(PY) -m export build/train/$(MODEL) --out build/models/$(MODEL) --dev-set build/corpus \
	  --description "Turkish, trained from scratch on synthetic espeak-ng speech only (see README.md there)"
	$(PY) -m training.model_card --model build/models/$(MODEL) --training build/train/$(MODEL) \
	  --corpus build/corpus --out models/$(MODEL)
	$(PY) -m training.calibrate --model models/$(MODEL) --corpus build/corpus --write
	$(PY) -m training.lm --model models/$(MODEL) --corpus build/corpus --write
	$(PY) -m training.samples --corpus build/corpus --out samples

clean: down
	rm -rf $(RUN) data
