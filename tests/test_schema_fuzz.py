"""Schemathesis against the api's own OpenAPI schema, over real HTTP (uvicorn, a private Redis, a
SQLite file, a real Celery worker so /ready is 200): whatever it sends, no 5xx and every response
matches the schema."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode

from api.main import create_app
from stt_common.migrate import upgrade
from tests.services import CeleryWorker, RedisServer, ThreadedServer
from tests.stack import make_stack

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("STT_FUZZ_EXAMPLES", "15"))  # per operation and mode; raise for a deeper run


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    tmp = tmp_path_factory.mktemp("fuzz")
    redis = RedisServer(tmp)
    url = f"sqlite:///{tmp / 'stt.db'}"
    upgrade(url)
    stack = make_stack(url, redis.url, tmp, openai_wait_seconds=5.0, max_batch_items=20)
    worker = CeleryWorker(stack.env, tmp / "worker.log").start()
    server = ThreadedServer(create_app(stack.settings))
    try:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    finally:
        server.stop()
        worker.stop()
        redis.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_errors_and_responses_match_the_schema(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    """Positive: requests the schema allows; negative: requests it forbids (each must be a 4xx)."""
    # Each operation on its own (schemathesis's lazy pytest fixture does not run on pytest 9), every
    # failure collected so one run reports them all.
    failures: dict[str, str] = {}
    calls = collections.Counter[str]()
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case[Any]) -> None:
            calls[case.operation.label] += 1
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=30)

        try:
            check()
        except Unsatisfiable:  # negative mode: nothing in this operation can be made invalid (string ids)
            continue
        except Exception as exc:
            failures[operation.label] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
    assert sum(calls.values()) >= 60, calls  # it really sent requests
