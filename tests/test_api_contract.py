"""What docs/API.md promises about answers, checked on the real app: one error shape for everything,
the documented code for each limit, and the documented fields and headers."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from stt_common import jobs
from stt_common.transcript import Transcript, Word
from tests.services import RedisServer
from tests.stack import SAMPLES, Stack, make_stack

CLIP = (SAMPLES / "clip01.wav").read_bytes()


@pytest.fixture
def two_per_batch(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[TestClient]:
    stack = make_stack(database_url, redis_server.url, tmp_path, max_batch_items=2)
    with TestClient(create_app(stack.settings), raise_server_exceptions=False) as client:
        yield client


def corrupt_deflate_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.wav", CLIP)
        zf.writestr("bad.wav", CLIP)
    data = bytearray(buf.getvalue())
    start = data.find(b"bad.wav") + len(b"bad.wav")  # the local header's name; its deflated data follows
    data[start + 100 : start + 400] = b"\xff" * 300
    return bytes(data)


def test_a_member_with_corrupt_deflated_data_is_one_failed_item_not_a_lost_batch(two_per_batch: TestClient) -> None:
    r = two_per_batch.post("/v1/batches", files={"archive": ("x.zip", corrupt_deflate_zip())})
    assert r.status_code == 202, r.text
    assert [(i["filename"], i["status"], (i["error"] or {}).get("code")) for i in r.json()["items"]] == [
        ("good.wav", "queued", None),
        ("bad.wav", "failed", "corrupt_archive_member"),
    ]


def test_over_long_fields_get_their_own_codes(two_per_batch: TestClient) -> None:
    for path, part in (("/v1/jobs", "file"), ("/v1/batches", "files")):
        r = two_per_batch.post(path, files={part: ("a.wav", CLIP)}, data={"metadata": '{"k": "' + "v" * 5000 + '"}'})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_metadata"), (path, r.text)
        r = two_per_batch.post(
            path, files={part: ("a.wav", CLIP)}, data={"webhook_url": "https://example.com/" + "a" * 2100}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_webhook_url"), (path, r.text)


@pytest.mark.parametrize("count", [3, 4, 50])
def test_too_many_files_is_one_code_one_status_one_message(two_per_batch: TestClient, count: int) -> None:
    r = two_per_batch.post("/v1/batches", files=[("files", (f"{i}.wav", CLIP)) for i in range(count)])
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "too_many_files",
        "message": "a batch holds at most 2 files (STT_MAX_BATCH_ITEMS)",
    }
    r = two_per_batch.post("/v1/jobs", files=[("file", (f"{i}.wav", CLIP)) for i in range(count)])
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_many_files")
    assert "one `file` part" in r.json()["error"]["message"]


def test_an_unexpected_error_still_answers_in_the_error_shape(stack: Stack) -> None:
    app = create_app(stack.settings)

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "a bug" not in r.text


def test_batch_metadata_is_on_every_item_and_refused_items_count_as_finished(
    database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = make_stack(database_url, redis_server.url, tmp_path, metrics_cache_seconds=0)
    failed = 'stt_jobs_finished_total{code="invalid_audio",status="failed"}'
    with TestClient(create_app(stack.settings)) as client:
        before = _metric(client.get("/metrics").text, failed)
        r = client.post(
            "/v1/batches",
            files=[("files", ("a.wav", CLIP)), ("files", ("notes.txt", b"not audio" * 50))],
            data={"metadata": '{"course": "fizik"}'},
        )
        assert r.status_code == 202, r.text
        for item in r.json()["items"]:
            assert client.get(f"/v1/jobs/{item['job_id']}").json()["metadata"] == {"course": "fizik"}
        assert _metric(client.get("/metrics").text, failed) == before + 1


def _metric(text: str, name: str) -> float:
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)


def test_lists_carry_summaries_and_timings_are_rounded_to_the_millisecond(stack: Stack) -> None:
    with TestClient(create_app(stack.settings)) as client:
        job_id = client.post("/v1/jobs", files={"file": ("a.wav", CLIP)}).json()["id"]
        with stack.session_factory() as session:
            attempt = jobs.claim(session, uuid.UUID(job_id), 60, 3)
            assert attempt is not None
            transcript = Transcript("merhaba", [Word("merhaba", 0.1, 0.5, 0.9)], duration_s=4.2)
            jobs.complete(session, uuid.UUID(job_id), attempt, transcript, 0.0123456789)
            session.commit()
        detail = client.get(f"/v1/jobs/{job_id}").json()
        listed = client.get("/v1/jobs").json()["data"][0]
    assert set(detail["result"]) == {"text", "raw_text", "duration_s", "words", "segments"}
    assert detail["result"]["words"]
    assert listed["id"] == job_id
    assert set(listed["result"]) == {"text", "raw_text", "duration_s"}
    assert detail["timings"]["processing_s"] == 0.012
    assert len(str(detail["timings"]["queue_wait_s"]).split(".")[-1]) <= 3


def test_openapi_lets_docs_send_a_key_and_lists_only_the_statuses_a_route_can_answer(stack: Stack) -> None:
    with TestClient(create_app(stack.settings)) as client:
        schema = client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}], path
                assert {"401", "429", "503"} <= set(operation["responses"]), path
            else:
                assert "security" not in operation, path
    get_job = schema["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
    assert "404" in get_job
    assert "413" not in get_job
    assert "409" not in get_job
    assert "504" in schema["paths"]["/v1/audio/transcriptions"]["post"]["responses"]
