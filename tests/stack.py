"""What tests share besides fixtures: paths of the samples and models, one test's settings and stores
(`Stack`), the few job helpers tests need beyond `client.api.SttClient` (which drives the end-to-end
tests as users drive the service), and the stacks that fault tests break on purpose."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from client.api import SttClient
from stt_common.db import make_engine, make_session_factory
from stt_common.migrate import upgrade
from stt_common.models import Job
from stt_common.settings import REPO_ROOT, Settings
from stt_common.storage import Storage, open_storage
from tests.services import CeleryWorker, RedisServer, ThreadedServer, webhooks_worker

SAMPLES = REPO_ROOT / "samples"
MODELS = REPO_ROOT / "models"
# A tiny randomly initialised model (python -m training.random_checkpoint --preset tiny, then export):
# fast enough for unit tests of the engine; its transcripts are meaningless.
TINY_MODEL = REPO_ROOT / "tests" / "fixtures" / "models" / "tr-tiny-random"
POSTGRES_SERVER = os.environ.get("STT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass
class Stack:
    """Settings for one test, plus the same as STT_* variables for subprocesses."""

    settings: Settings
    env: dict[str, str]
    session_factory: sessionmaker[Session]
    storage: Storage


def make_stack(database_url: str, redis_url: str, tmp_path: Path, **overrides: object) -> Stack:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "storage_dir": tmp_path / "storage",
        "models_dir": MODELS,
        "warmup_seconds": 1.0,
        "worker_threads": 1,
        "auth_enabled": False,  # tests/test_auth.py turns it on
        **overrides,
    }
    env = {f"STT_{k.upper()}": json.dumps(v) if isinstance(v, list) else str(v) for k, v in values.items()}
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return Stack(settings, env, make_session_factory(make_engine(database_url)), open_storage(settings))


def job_statuses(stack: Stack) -> dict[str, str]:
    """Every job's status by id, read from the database (what a fault test trusts over the api)."""
    with stack.session_factory() as s:
        return {str(j.id): j.status for j in s.scalars(select(Job))}


# --- Stacks whose parts tests break on purpose (tests/test_faults.py and others)

SLOW = "worker.before_complete=sleep:{}"  # holds a finished transcription before its result is stored


def fault_stack(database_url: str, redis_url: str, tmp_path: Path, **overrides: object) -> Stack:
    """Fast recovery for tests: a 3 s lease, a reaper every second with a 1 s grace, quick webhook
    retries to a local receiver."""
    values: dict[str, object] = {
        "job_lease_seconds": 3,
        "reaper_interval_seconds": 1.0,
        "reaper_grace_seconds": 1.0,
        "task_retry_backoff_max": 2,
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_retry_schedule": [0.3] * 8,
        "webhook_sweep_seconds": 0.5,
        "webhook_timeout_seconds": 2.0,
        **overrides,
    }
    return make_stack(database_url, redis_url, tmp_path, **values)


def with_faults(stack: Stack, faults: str) -> dict[str, str]:
    return {**stack.env, "STT_FAULT_POINTS": faults}


def migrated_sqlite(tmp_path: Path) -> str:
    """The URL of a fresh, migrated SQLite database in `tmp_path`."""
    url = f"sqlite:///{tmp_path / 'stt.db'}"
    upgrade(url)
    return url


def sqlite_stack(redis: RedisServer, tmp_path: Path, **overrides: object) -> Stack:
    return fault_stack(migrated_sqlite(tmp_path), redis.url, tmp_path, **overrides)


@contextmanager
def service(stack: Stack, tmp_path: Path, *workers: CeleryWorker) -> Iterator[tuple[SttClient, CeleryWorker]]:
    """The webhooks worker (with its reaper) and the api in a thread, for `workers` the test started;
    all of them stopped at the end."""
    housekeeping = webhooks_worker(stack.env, tmp_path).start()
    server = ThreadedServer(create_app(stack.settings))
    try:
        with SttClient(server.url, timeout=30) as stt:
            yield stt, housekeeping
    finally:
        server.stop()
        for process in (housekeeping, *workers):
            process.stop()
