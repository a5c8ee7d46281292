"""Retention: audio and transcripts deleted after their time, per deployment and per tenant, the job row
left as a tombstone, the purge safe beside another one, and all of it through a real worker and beat."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from client.api import SttClient
from stt_common import jobs, retention
from stt_common.db import session_scope
from stt_common.models import Job, WebhookDelivery
from stt_common.settings import get_settings
from stt_common.storage import audio_key
from stt_common.transcript import Transcript
from tests.services import CeleryWorker, RedisServer, ThreadedServer, wait_for, webhooks_worker
from tests.stack import SAMPLES, Stack, make_stack
from tests.test_observability import scrape


def finished_job(stack: Stack, tenant: str = "default", text: str = "bir iki") -> Job:
    """A succeeded job with stored audio and a delivered-looking webhook event, as a worker leaves one."""
    job_id = uuid.uuid4()
    stored = stack.storage.put(audio_key(job_id), io.BytesIO(b"RIFF...some audio"))
    with session_scope(stack.session_factory) as session:
        session.add(
            Job(
                id=job_id,
                tenant=tenant,
                model="tr-espeak-small",
                audio_key=stored.key,
                audio_sha256=stored.sha256,
                audio_bytes=stored.bytes,
                webhook_url="https://example.com/hook",
            )
        )
    with session_scope(stack.session_factory) as session:
        attempt = jobs.claim(session, job_id, 60, max_attempts=3)
        assert attempt is not None
        assert jobs.complete(session, job_id, attempt, Transcript(text=text, duration_s=1.0), 0.1)
    with stack.session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def later(job: Job, seconds: float) -> dt.datetime:
    assert job.finished_at is not None
    return job.finished_at + dt.timedelta(seconds=seconds)


def test_an_expired_transcript_leaves_a_tombstone_and_its_events_are_erased(stack: Stack, tmp_path: Path) -> None:
    kept = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, transcript_retention_seconds=60)
    job = finished_job(kept)
    assert retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(job, 59)).transcripts == 0
    purged = retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(job, 61))
    assert purged == retention.Purged(audio=0, transcripts=1)
    assert retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(job, 62)).transcripts == 0
    with TestClient(create_app(kept.settings)) as client:
        body = client.get(f"/v1/jobs/{job.id}").json()
        assert body["status"] == "succeeded"  # the job stays, saying what happened
        assert body["result"] is None
        assert body["transcript_purged_at"] is not None
        assert body["audio"]["purged_at"] is None  # audio is kept (no audio retention)
        gone = client.get(f"/v1/jobs/{job.id}/transcript")
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "transcript_expired"
        assert client.get("/v1/jobs").json()["data"][0]["result"] is None
    with stack.session_factory() as session:
        (delivery,) = session.query(WebhookDelivery).all()
        assert "bir iki" not in delivery.body  # the event's copy of the text went too
    assert kept.storage.list_keys() == [job.audio_key]


def test_a_tenant_policy_overrides_the_default_for_that_tenant_only(stack: Stack, tmp_path: Path) -> None:
    kept = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, audio_retention_seconds=3600)
    mine, theirs = finished_job(kept, tenant="acme"), finished_job(kept, tenant="other")
    with session_scope(kept.session_factory) as session:
        retention.set_policy(session, "acme", audio_seconds=60, transcript_seconds=None)
    with kept.session_factory() as session:
        assert retention.policy_for(session, kept.settings, "acme") == retention.Policy(60, None)
        assert retention.policy_for(session, kept.settings, "other") == retention.Policy(3600, None)
    purged = retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(mine, 120))
    assert purged == retention.Purged(audio=1, transcripts=0)
    assert kept.storage.list_keys() == [theirs.audio_key]
    with kept.session_factory() as session:
        gone, stays = session.get(Job, mine.id), session.get(Job, theirs.id)
        assert gone is not None
        assert stays is not None
        assert (gone.audio_key, gone.audio_purged_at is not None, gone.text) == (None, True, "bir iki")
        assert (stays.audio_key, stays.audio_purged_at) == (theirs.audio_key, None)
    purged = retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(theirs, 3601))
    assert purged.audio == 1
    assert kept.storage.list_keys() == []


def test_two_purges_at_once_delete_and_count_each_object_once(stack: Stack, tmp_path: Path) -> None:
    kept = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, audio_retention_seconds=0)
    made = [finished_job(kept) for _ in range(6)]
    results: list[retention.Purged] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(retention.purge(kept.session_factory, kept.storage, kept.settings, now=later(made[-1], 1)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.audio for r in results) == 6
    assert kept.storage.list_keys() == []


@pytest.mark.slow
def test_through_a_worker_and_the_beat_audio_goes_at_once_and_the_transcript_later(
    database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    from redis import Redis

    Redis.from_url(redis_server.url).flushall()
    stack = make_stack(
        database_url,
        redis_server.url,
        tmp_path,
        audio_retention_seconds=0,
        transcript_retention_seconds=3,
        retention_interval_seconds=1.0,
    )
    worker = CeleryWorker(stack.env, tmp_path / "worker.log").start()
    beat = webhooks_worker(stack.env, tmp_path)
    server = ThreadedServer(create_app(stack.settings))
    try:
        with SttClient(server.url) as stt:
            job = stt.wait(stt.submit(SAMPLES / "clip01.wav")["id"], timeout=60)
            assert job["status"] == "succeeded"
            # Deleted by the worker right after the job's commit, with no purge running (the beat is not up).
            wait_for(lambda: stt.job(job["id"])["audio"]["purged_at"], 10, "the audio to be deleted", interval=0.02)
            assert stack.storage.list_keys() == []
            assert stt.transcript(job["id"])  # the transcript is still there
            beat.start()

            def expired() -> bool:
                return stt.http.get(f"/v1/jobs/{job['id']}/transcript").status_code == 410

            wait_for(expired, 60, "the purge to delete the transcript", interval=0.5)
            metrics = scrape(stt.http)
            assert metrics[("stt_retention_purged_total", (("what", "audio"),))] == 1
            assert metrics[("stt_retention_purged_total", (("what", "transcript"),))] == 1
            assert json.dumps(stt.job(job["id"])).count("purged_at") == 2
    finally:
        server.stop()
        beat.stop()
        worker.stop()


def test_the_admin_command_shows_and_sets_a_tenant_policy(stack: Stack) -> None:
    from typer.testing import CliRunner

    from api.admin import app

    env = {"STT_DATABASE_URL": stack.settings.database_url, "STT_TRANSCRIPT_RETENTION_SECONDS": "86400"}
    runner = CliRunner()
    get_settings.cache_clear()  # the command reads these variables, not an earlier test's settings
    shown = runner.invoke(app, ["retention", "--tenant", "acme"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "audio kept until the job is deleted; transcripts kept 86400 s after the job ends" in shown.output
    set_ = runner.invoke(app, ["retention", "--tenant", "acme", "--audio-seconds", "0"], env=env)
    assert "audio kept 0 s after the job ends" in set_.output
    with stack.session_factory() as session:
        assert retention.policy_for(session, stack.settings, "acme").audio_seconds == 0
    back = runner.invoke(app, ["retention", "--tenant", "acme", "--default"], env=env)
    assert "audio kept until the job is deleted" in back.output
    get_settings.cache_clear()
