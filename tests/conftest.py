"""Fixtures only (helpers live in tests/stack.py and tests/services.py): they build real objects, a
private Redis, SQLite files and fresh PostgreSQL databases migrated with Alembic, the bundled model,
real audio clips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from api.main import create_app
from stt_common.migrate import upgrade
from tests.services import (
    CeleryWorker,
    RedisServer,
    S3Server,
    ThreadedServer,
    create_postgres_database,
    drop_postgres_database,
    webhooks_worker,
)
from tests.stack import POSTGRES_SERVER, Stack, make_stack


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_SERVER, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_available()
    if problem:
        if os.environ.get("STT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_SERVER}: {problem}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_SERVER}: {problem}")
    return POSTGRES_SERVER


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'stt.db'}"
        upgrade(url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    url = create_postgres_database(server)
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest.fixture
def stack(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Stack:
    Redis.from_url(redis_server.url).flushall()  # our own server: no messages left from other tests
    return make_stack(database_url, redis_server.url, tmp_path)


@pytest.fixture
def hook_stack(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Stack:
    """Receivers listen on 127.0.0.1, so the test allowlists it; retries come fast; no secret is
    configured, so the service makes its own."""
    Redis.from_url(redis_server.url).flushall()
    return make_stack(
        database_url,
        redis_server.url,
        tmp_path,
        max_audio_seconds=60.0,
        webhook_allowed_hosts=["127.0.0.1"],
        webhook_retry_schedule=[0.3, 0.3, 0.3, 0.3],
        webhook_sweep_seconds=0.5,
        webhook_timeout_seconds=1.0,
    )


@pytest.fixture
def running(hook_stack: Stack, tmp_path: Path) -> Iterator[httpx.Client]:
    transcriber = CeleryWorker(hook_stack.env, tmp_path / "worker.log").start()
    sender = webhooks_worker(hook_stack.env, tmp_path).start()
    server = ThreadedServer(create_app(hook_stack.settings))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()
        sender.stop()
        transcriber.stop()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A private S3-compatible server (moto) with an `stt-audio` bucket; the standard AWS variables name
    it for this process and for the workers it starts."""
    server = S3Server(tmp_path / "s3.log")
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()
