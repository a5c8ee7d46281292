"""Batches: many files in one request, bad ones refused one by one, one `batch.completed` event."""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
import webvtt
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from api.main import create_app
from stt_common import jobs
from stt_common.migrate import upgrade
from stt_common.models import Batch, Job, WebhookDelivery
from stt_common.transcript import Transcript
from tests.audio_files import video_without_sound, wav_with_channels
from tests.services import (
    RedisServer,
    WebhookReceiver,
    create_postgres_database,
    drop_postgres_database,
    wait_for,
)
from tests.stack import SAMPLES, Stack, make_stack
from tests.test_webhooks import service_secret

CLIPS = sorted(SAMPLES.glob("clip*"))
BAD = {  # index in the batch → (file name, bytes, expected code)
    7: ("empty.wav", b"", "empty_file"),
    23: ("notes.txt", "bu bir ses dosyası değil\n".encode() * 50, "invalid_audio"),
    50: ("cut.ogg", (SAMPLES / "clip03.ogg").read_bytes()[:20000], "truncated_audio"),
    71: ("screen.mp4", video_without_sound(), "no_audio_stream"),
    99: ("array.wav", wav_with_channels(64), "unsupported_audio"),
}


def batch_files(n: int) -> list[tuple[str, tuple[str, bytes]]]:
    files = []
    for i in range(n):
        if i in BAD:
            name, data, _ = BAD[i]
        else:
            clip = CLIPS[i % len(CLIPS)]
            name, data = f"{i:03d}-{clip.name}", clip.read_bytes()
        files.append(("files", (name, data)))
    return files


@pytest.mark.slow
def test_a_batch_of_100_with_5_bad_files(hook_stack: Stack, running: httpx.Client) -> None:
    api = running
    receiver = WebhookReceiver()
    try:
        r = api.post(
            "/v1/batches",
            files=batch_files(100),
            data={"webhook_url": receiver.url(), "metadata": json.dumps({"course": "fizik-101"})},
        )
        assert r.status_code == 202, r.text
        batch = r.json()
        assert batch["total"] == 100
        assert len(batch["items"]) == 100
        assert [item["index"] for item in batch["items"]] == list(range(100))
        rejected = {item["index"]: item["error"]["code"] for item in batch["items"] if item["status"] == "failed"}
        assert rejected == {i: code for i, (_, _, code) in BAD.items()}
        assert batch["items"][7]["filename"] == "empty.wav"

        def completed() -> dict | None:  # type: ignore[type-arg]
            body = api.get(f"/v1/batches/{batch['id']}").json()
            return body if body["status"] == "completed" else None

        done = wait_for(completed, 180, "the batch to complete", interval=0.2)
        assert done["counts"] == {"queued": 0, "processing": 0, "succeeded": 95, "failed": 5, "canceled": 0}
        assert done["completed_at"] is not None
        assert done["metadata"] == {"course": "fizik-101"}

        # Webhooks: one event per job (95 succeeded, 5 failed) and exactly one batch.completed, all signed.
        # Delivery is at least once: an attempt that timed out after the receiver got it is sent again with
        # the same webhook-id and body, which is how a receiver deduplicates, and so does this test.
        wait_for(lambda: len({r.headers["webhook-id"] for r in receiver.received}) >= 101, 60, "101 webhook events")
        secret = service_secret(hook_stack)
        hook = Webhook(secret)
        by_id: dict[str, bytes] = {}
        for request in receiver.received:
            hook.verify(request.body, request.headers)
            assert by_id.setdefault(request.headers["webhook-id"], request.body) == request.body
        received = [json.loads(body) for body in by_id.values()]
        assert Counter(e["type"] for e in received) == {"job.succeeded": 95, "job.failed": 5, "batch.completed": 1}
        (completion,) = [e for e in received if e["type"] == "batch.completed"]
        assert completion["data"]["id"] == batch["id"]
        assert completion["data"]["counts"]["succeeded"] == 95
        assert completion["data"]["metadata"] == {"course": "fizik-101"}
        job_ids = {e["data"]["id"] for e in received if e["type"].startswith("job.")}
        assert job_ids == {item["job_id"] for item in batch["items"]}
        assert all(e["data"]["batch_id"] == batch["id"] for e in received if e["type"].startswith("job."))
        log = api.get(f"/v1/batches/{batch['id']}/webhooks").json()["data"]
        assert [(d["event_type"], d["status"]) for d in log] == [("batch.completed", "delivered")]

        # Results: JSONL in file order, then zips of subtitles that parse.
        lines = [json.loads(line) for line in api.get(f"/v1/batches/{batch['id']}/results").text.splitlines()]
        assert [line["batch_index"] for line in lines] == list(range(100))
        for line in lines:
            assert line == api.get(f"/v1/jobs/{line['id']}").json()  # each line is the job itself
            if line["batch_index"] in BAD:
                assert line["status"] == "failed"
                assert line["error"]["code"] == BAD[line["batch_index"]][2]
            else:
                assert line["status"] == "succeeded"
                assert line["result"]["text"]
                assert line["result"]["words"]
        for fmt in ("srt", "vtt"):
            r = api.get(f"/v1/batches/{batch['id']}/results", params={"format": fmt})
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
                names = zf.namelist()
                assert len(names) == 95
                assert names[0] == "0000-000-clip01.srt".replace("srt", fmt)
                for name in names:
                    text = zf.read(name).decode()
                    cues = list(srt.parse(text)) if fmt == "srt" else webvtt.from_buffer(io.StringIO(text)).captions
                    assert cues, name
    finally:
        receiver.stop()


@pytest.fixture
def small_client(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[TestClient, Stack]]:
    stack = make_stack(database_url, redis_server.url, tmp_path, max_batch_items=5)
    with TestClient(create_app(stack.settings)) as client:
        yield client, stack


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_archive_limits_idempotency_and_delete(small_client: tuple[TestClient, Stack]) -> None:
    client, stack = small_client
    clip = (SAMPLES / "clip01.wav").read_bytes()
    archive = zip_of(
        {
            "ders/a.wav": clip,
            "ders/b.flac": (SAMPLES / "clip02.flac").read_bytes(),
            "ders/bozuk.mp3": b"\xff\xfb" + b"\x00" * 100,
            "__MACOSX/ders/._a.wav": b"junk",
            ".DS_Store": b"junk",
        }
    )
    r = client.post("/v1/batches", files={"archive": ("ders.zip", archive)}, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert [(i["filename"], i["status"]) for i in batch["items"]] == [
        ("ders/a.wav", "queued"),
        ("ders/b.flac", "queued"),
        ("ders/bozuk.mp3", "failed"),
    ]
    assert batch["items"][2]["error"]["code"] in ("invalid_audio", "corrupt_audio")
    assert batch["counts"]["queued"] == 2
    assert batch["status"] == "processing"

    again = client.post("/v1/batches", files={"archive": ("ders.zip", archive)}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202
    assert again.json()["id"] == batch["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/batches", files={"files": ("a.wav", clip)}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    cases: list[tuple[Any, int, str]] = [
        ([("files", (f"{i}.wav", clip)) for i in range(6)], 413, "too_many_files"),
        ({"archive": ("x.zip", zip_of({f"{i}.wav": clip for i in range(6)}))}, 413, "too_many_files"),
        ({"archive": ("x.zip", b"PK\x03\x04 not really a zip")}, 422, "invalid_archive"),
        ({"archive": ("x.zip", zip_of({}))}, 422, "empty_batch"),
        ({"model": (None, "no-such-model"), "files": ("a.wav", clip)}, 400, "unknown_model"),
    ]
    for files, status, code in cases:
        r = client.post("/v1/batches", files=files)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text

    # Every file bad: the batch is complete at once, its three events waiting to be sent.
    r = client.post(
        "/v1/batches",
        files=[("files", ("x.txt", b"hello")), ("files", ("e.wav", b""))],
        data={"webhook_url": "https://receiver.example/hook"},
    )
    assert r.status_code == 202
    assert r.json()["status"] == "completed"
    assert r.json()["counts"]["failed"] == 2
    assert client.delete(f"/v1/batches/{r.json()['id']}").status_code == 204
    with stack.session_factory() as session:  # deleting it cancels them and erases their bodies
        events = [
            (d.event_type, d.status, d.body)
            for d in session.query(WebhookDelivery).filter(WebhookDelivery.batch_id == uuid.UUID(r.json()["id"]))
        ]
    assert sorted(events) == [("batch.completed", "canceled", ""), *[("job.failed", "canceled", "")] * 2]

    # Delete: the queued jobs are canceled, their audio removed, the batch gone.
    assert len(stack.storage.list_keys()) == 2
    assert client.delete(f"/v1/batches/{batch['id']}").status_code == 204
    assert client.get(f"/v1/batches/{batch['id']}").json()["error"]["code"] == "batch_not_found"
    assert stack.storage.list_keys() == []
    with stack.session_factory() as session:
        statuses = [j.status for j in session.query(Job).filter(Job.batch_id == uuid.UUID(batch["id"])).all()]
    assert sorted(statuses) == ["canceled", "canceled", "failed"]
    assert client.get(f"/v1/batches/{batch['id']}/results").status_code == 404


def _finish(factory: sessionmaker[Session], job_id: uuid.UUID, attempt: int, barrier: threading.Barrier) -> None:
    with factory() as session:
        barrier.wait()
        jobs.complete(session, job_id, attempt, Transcript(text="x", duration_s=1.0), 0.1)
        session.commit()


@pytest.mark.postgres
def test_concurrent_last_jobs_complete_the_batch_exactly_once(postgres_server: str, tmp_path: Path) -> None:
    """Two workers finish a batch's last two jobs at the same moment, in separate transactions on
    PostgreSQL: exactly one of them completes the batch and writes `batch.completed`, every time."""
    url = create_postgres_database(postgres_server)
    try:
        upgrade(url)
        factory = make_stack(url, "redis://127.0.0.1:1/0", tmp_path).session_factory
        for _ in range(20):
            batch_id, ids = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
            with factory() as session:
                session.add(
                    Batch(id=batch_id, model="m", webhook_url="https://example.com/h", item_count=2, remaining=2)
                )
                session.flush()
                session.add_all([Job(id=i, model="m", batch_id=batch_id, audio_sha256="0", audio_bytes=1) for i in ids])
                session.commit()
                attempts = {i: jobs.claim(session, i, 60, max_attempts=3) for i in ids}
                session.commit()
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=_finish, args=(factory, i, attempts[i], barrier)) for i in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            with factory() as session:
                batch = session.get(Batch, batch_id)
                assert batch is not None
                assert batch.remaining == 0
                assert batch.completed_at is not None
                completions = (
                    session.query(WebhookDelivery).filter_by(batch_id=batch_id, event_type="batch.completed").count()
                )
                assert completions == 1
    finally:
        drop_postgres_database(postgres_server, url)
