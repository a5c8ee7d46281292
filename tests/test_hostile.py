"""The hostile-input corpus (tests/hostile/, made by its make_corpus.py) through the real api, and as one
batch through a real worker: every file gets its expected 4xx or job outcome with a code, nothing
refused is stored, and the worker lives through all of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.services import CeleryWorker, RedisServer, ThreadedServer, wait_for
from tests.stack import Stack, make_stack

HOSTILE = Path(__file__).resolve().parent / "hostile"
EXPECTED: dict[str, dict[str, object]] = json.loads((HOSTILE / "expected.json").read_text())
AT_THE_DOOR = sorted(n for n, e in EXPECTED.items() if "status" in e)
LIMIT_S = 600.0  # the corpus's decoding bomb declares two hours


@pytest.fixture
def hostile_stack(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Stack:
    return make_stack(database_url, redis_server.url, tmp_path, max_audio_seconds=LIMIT_S)


def content(name: str) -> bytes:
    return (HOSTILE / "files" / name).read_bytes()


def test_the_corpus_on_disk_is_what_its_script_makes() -> None:
    assert sorted(p.name for p in (HOSTILE / "files").iterdir()) == sorted(EXPECTED)
    assert len(AT_THE_DOOR) >= 10
    assert len(EXPECTED) - len(AT_THE_DOOR) >= 4


@pytest.mark.parametrize("name", AT_THE_DOOR)
def test_refused_at_the_door_with_a_code_and_nothing_kept(hostile_stack: Stack, name: str) -> None:
    expected = EXPECTED[name]
    with TestClient(create_app(hostile_stack.settings)) as client:
        r = client.post("/v1/jobs", files={"file": (str(expected["filename"]), content(name), "audio/wav")})
    assert (r.status_code, r.json()["error"]["code"]) == (expected["status"], expected["code"]), r.text
    assert hostile_stack.storage.list_keys() == []


@pytest.mark.slow
def test_the_whole_corpus_as_one_batch_through_a_real_worker(hostile_stack: Stack, tmp_path: Path) -> None:
    worker = CeleryWorker(hostile_stack.env, tmp_path / "worker.log").start()
    server = ThreadedServer(create_app(hostile_stack.settings))
    names = sorted(EXPECTED)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            files = [("files", (str(EXPECTED[n]["filename"]), content(n))) for n in names]
            r = api.post("/v1/batches", files=files)
            assert r.status_code == 202, r.text
            batch_id = r.json()["id"]

            def completed() -> dict | None:  # type: ignore[type-arg]
                body = api.get(f"/v1/batches/{batch_id}").json()
                return body if body["status"] == "completed" else None

            batch = wait_for(completed, 120, "the batch", interval=0.2)
            assert isinstance(batch, dict)
            assert worker.proc is not None
            assert worker.proc.poll() is None
            jobs = {
                n: api.get(f"/v1/jobs/{item['job_id']}").json() for n, item in zip(names, batch["items"], strict=True)
            }
    finally:
        server.stop()
        worker.stop()
    for name, job in jobs.items():
        expected = EXPECTED[name]
        if expected.get("job") == "succeeded":
            assert job["status"] == "succeeded", (name, job["error"])
        else:
            assert (job["status"], job["error"]["code"]) == ("failed", expected["code"]), name
    assert jobs["flac-named.mp3"]["audio"]["filename"] == "passwd.mp3"  # shown, never used as a path
    accepted = {j["id"] for n, j in jobs.items() if "job" in EXPECTED[n]}
    assert {Path(k).name for k in hostile_stack.storage.list_keys()} == accepted


def test_a_request_with_too_many_parts_or_oversized_fields_is_refused(hostile_stack: Stack) -> None:
    clip = content("flac-named.mp3")
    with TestClient(create_app(hostile_stack.settings)) as client:
        fields = {f"f{i}": "x" for i in range(1001)}  # Starlette's cap: 1000 fields a request
        r = client.post("/v1/jobs", files={"file": ("a.flac", clip)}, data=fields)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "too_many_parts")
        r = client.post("/v1/jobs", files={"file": ("a.flac", clip)}, data={"metadata": "{" + " " * 5000 + "}"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_metadata"
        r = client.post("/v1/jobs", files={"file": ("a.flac", clip)}, data={"notes": "x" * 70_000})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "field_too_large"
        r = client.post("/v1/jobs", files={"file": ("a.flac", clip)}, data={"model": "m" * 200})
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "validation_error"
    assert hostile_stack.storage.list_keys() == []
