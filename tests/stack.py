"""What tests share besides fixtures: paths of the samples and models, one test's settings and stores
(`Stack`), and the few job helpers tests need beyond `client.api.SttClient`, which drives the
end-to-end tests as users drive the service."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stt_common.db import make_engine, make_session_factory
from stt_common.models import Job
from stt_common.settings import REPO_ROOT, Settings
from stt_common.storage import Storage, open_storage

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
