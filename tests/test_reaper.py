"""The job reaper against a real Redis holding real Celery messages, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from redis import Redis
from sqlalchemy import update

from stt_common import events, jobs, reaper
from stt_common.db import session_scope, utcnow
from stt_common.models import Job, WebhookDelivery
from stt_common.queue import TRANSCRIBE_QUEUE, make_celery, publish_transcription
from tests.stack import Stack

MAX_ATTEMPTS = 3
MAX_HOLD_S = 120.0


@pytest.fixture
def celery(stack: Stack) -> Iterator[Celery]:
    app = make_celery(stack.settings)
    yield app
    app.close()


@pytest.fixture
def redis(stack: Stack) -> Redis:
    return Redis.from_url(stack.settings.redis_url)


def add(
    stack: Stack,
    *,
    age_s: float = 120,
    status: str = "queued",
    lease_s: float | None = None,
    attempts: int = 0,
    webhook: bool = False,
) -> uuid.UUID:
    job_id = uuid.uuid4()
    with session_scope(stack.session_factory) as s:
        s.add(
            Job(
                id=job_id,
                model="tr-espeak-small",
                audio_sha256="0" * 64,
                audio_bytes=1,
                status=status,
                created_at=utcnow() - dt.timedelta(seconds=age_s),
                attempts=attempts,
                webhook_url="https://example.com/hook" if webhook else None,
                lease_expires_at=utcnow() + dt.timedelta(seconds=lease_s) if lease_s is not None else None,
            )
        )
    return job_id


def run_reaper(stack: Stack, redis: Redis, celery: Celery) -> reaper.Reaped:
    return reaper.reap(
        stack.session_factory,
        redis,
        lambda i: publish_transcription(celery, i),
        grace_seconds=30,
        max_attempts=MAX_ATTEMPTS,
        max_hold_seconds=MAX_HOLD_S,
    )


def take(redis: Redis, tag: str, seconds_ago: float = 0.0) -> uuid.UUID:
    """What kombu does when a worker takes a message: off the list, into the unacked hash and index."""
    raw = redis.rpop(TRANSCRIBE_QUEUE)
    assert isinstance(raw, bytes)
    redis.hset(reaper.UNACKED_KEY, tag, json.dumps([json.loads(raw), "", TRANSCRIBE_QUEUE]))
    redis.zadd(reaper.UNACKED_INDEX_KEY, {tag: time.time() - seconds_ago})
    job_id = reaper._job_id(raw)
    assert job_id is not None
    return job_id


@pytest.mark.usefixtures("stack")
def test_broker_view_reads_real_messages_waiting_and_held(redis: Redis, celery: Celery) -> None:
    waiting, held = uuid.uuid4(), uuid.uuid4()
    publish_transcription(celery, held)
    publish_transcription(celery, waiting)
    assert take(redis, "tag-1", seconds_ago=5) == held  # the list pops from its far end: the first published
    redis.rpush(TRANSCRIBE_QUEUE, b"not json", json.dumps({"headers": {"task": "other"}, "body": ""}))
    view = reaper.broker_view(redis)
    assert view.waiting == {waiting}
    assert set(view.held) == {held}
    assert 4 < view.held[held] < 60


def test_the_reaper_resends_only_jobs_without_a_live_message(stack: Stack, redis: Redis, celery: Celery) -> None:
    lost = add(stack)  # committed, never published
    waiting = add(stack)
    publish_transcription(celery, waiting)
    young = add(stack, age_s=1)  # within the grace period: its message may be on the way
    running = add(stack, status="processing", lease_s=60, attempts=1)  # its worker renews the lease
    dead = add(stack, status="processing", lease_s=-1, attempts=1)  # the lease ran out: its worker died
    done = add(stack, status="succeeded")

    first = run_reaper(stack, redis, celery)
    assert sorted(first.requeued) == sorted([lost, dead])
    assert first.failed == []
    view = reaper.broker_view(redis)
    assert {lost, dead, waiting} <= view.waiting
    assert not {young, running, done} & view.waiting
    assert run_reaper(stack, redis, celery).requeued == []  # now they have messages
    with session_scope(stack.session_factory) as s:  # the re-sent message claims the dead worker's job
        assert jobs.claim(s, dead, 60, MAX_ATTEMPTS) == 2


def test_a_queued_job_whose_message_a_worker_has_held_too_long_is_resent(
    stack: Stack, redis: Redis, celery: Celery
) -> None:
    """A job released for a retry waits in a worker's memory until its countdown (at most
    STT_TASK_RETRY_BACKOFF_MAX); if that worker died, only the reaper can send the job again."""
    retrying, orphaned = add(stack), add(stack)
    for job_id in (retrying, orphaned):
        publish_transcription(celery, job_id)
    assert take(redis, "fresh", seconds_ago=10) == retrying
    assert take(redis, "stale", seconds_ago=MAX_HOLD_S + 60) == orphaned
    assert run_reaper(stack, redis, celery).requeued == [orphaned]


def test_a_job_whose_workers_keep_dying_fails_with_worker_lost(stack: Stack, redis: Redis, celery: Celery) -> None:
    poison = add(stack, status="processing", lease_s=-1, attempts=MAX_ATTEMPTS, webhook=True)
    with session_scope(stack.session_factory) as s:  # and no delivery may claim it again
        assert jobs.claim(s, poison, 60, MAX_ATTEMPTS) is None
    published: list[uuid.UUID] = []
    events.publish_after_commit(stack.session_factory, published.extend)  # as the webhooks worker does
    found = run_reaper(stack, redis, celery)
    assert found.failed == [poison]
    assert found.requeued == []
    with stack.session_factory() as s:
        job = s.get(Job, poison)
        assert job is not None
        assert (job.status, job.error_code) == ("failed", "worker_lost")
        (delivery,) = events.deliveries(s, job_id=poison)
        assert delivery.event_type == "job.failed"
        assert published == [delivery.id]
    assert run_reaper(stack, redis, celery) == reaper.Reaped([], [])


def test_the_lease_is_renewed_only_by_the_attempt_that_owns_the_job(stack: Stack) -> None:
    job_id = add(stack)
    with session_scope(stack.session_factory) as s:
        attempt = jobs.claim(s, job_id, 5, MAX_ATTEMPTS)
    assert attempt == 1
    with session_scope(stack.session_factory) as s:
        s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow()))
    with session_scope(stack.session_factory) as s:
        assert jobs.renew_lease(s, job_id, attempt, 60)
        assert not jobs.renew_lease(s, job_id, attempt + 1, 60)
    with stack.session_factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.lease_expires_at is not None
        assert job.lease_expires_at > utcnow() + dt.timedelta(seconds=50)
        assert s.query(WebhookDelivery).count() == 0
