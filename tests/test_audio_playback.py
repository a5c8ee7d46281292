"""GET /v1/jobs/{id}/audio: the job's audio played back as uploaded, byte ranges for seeking, and a clear
error for every range or state it cannot serve."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.main import create_app
from stt_common.db import session_scope, utcnow
from stt_common.models import Job
from tests.stack import SAMPLES, Stack

CLIP = SAMPLES / "clip01.wav"


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings)) as c:
        yield c


def uploaded(client: TestClient) -> str:
    r = client.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes(), "audio/wav")})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_the_audio_comes_back_whole_and_by_ranges(client: TestClient) -> None:
    job = uploaded(client)
    data = CLIP.read_bytes()
    whole = client.get(f"/v1/jobs/{job}/audio")
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["cache-control"] == "private, no-store"

    part = client.get(f"/v1/jobs/{job}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(f"/v1/jobs/{job}/audio", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])
    # Many ranges at once answer multipart/byteranges; past Starlette's 100 ranges, the whole file.
    many = client.get(f"/v1/jobs/{job}/audio", headers={"Range": "bytes=0-1,10-11"})
    assert many.status_code == 206
    assert many.headers["content-type"].startswith("multipart/byteranges")
    flood = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(500))
    assert client.get(f"/v1/jobs/{job}/audio", headers={"Range": flood}).content == data


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        ("items=0-10", 400, "invalid_range"),
        ("bytes", 400, "invalid_range"),
        ("bytes=20-10", 400, "invalid_range"),
        ("bytes=abc-def", 400, "invalid_range"),
        ("bytes=999999999-", 416, "range_not_satisfiable"),
    ],
)
def test_a_range_it_cannot_serve_is_refused_with_a_code(
    client: TestClient, header: str, status: int, code: str
) -> None:
    job = uploaded(client)
    r = client.get(f"/v1/jobs/{job}/audio", headers={"Range": header})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{CLIP.stat().st_size}"


def test_audio_not_fetched_yet_purged_or_of_no_job_is_a_clear_error(client: TestClient, stack: Stack) -> None:
    by_url = client.post("/v1/jobs", json={"audio_url": "https://example.com/talk.wav"})
    assert by_url.status_code == 202, by_url.text
    r = client.get(f"/v1/jobs/{by_url.json()['id']}/audio")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "audio_not_ready")

    job = uploaded(client)
    with session_scope(stack.session_factory) as session:  # what the retention purge leaves behind
        session.execute(update(Job).where(Job.id == uuid.UUID(job)).values(audio_key=None, audio_purged_at=utcnow()))
    r = client.get(f"/v1/jobs/{job}/audio")
    assert (r.status_code, r.json()["error"]["code"]) == (410, "audio_expired")

    lost = uploaded(client)
    for key in stack.storage.list_keys():
        stack.storage.delete(key)
    r = client.get(f"/v1/jobs/{lost}/audio")
    assert (r.status_code, r.json()["error"]["code"]) == (410, "audio_expired")

    r = client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/audio")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "job_not_found")
