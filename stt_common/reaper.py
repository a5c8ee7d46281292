"""The job reaper: the database is the record of every job, so a job the broker lost is found there and
sent again. It runs every `STT_REAPER_INTERVAL_SECONDS` in the webhooks worker's beat.

A job needs a new message when
  * it is `queued`, older than the grace period, and no message for it sits in the queue or has been
    held by a worker for less than `max_hold_seconds` (the api died or the broker refused between commit
    and publish; Redis restarted empty; the worker holding its delayed retry died);
  * it is `processing` and its lease ran out (its worker died, so nothing renews the lease), unless a
    message for it already waits in the queue. A job whose workers died `STT_JOB_MAX_ATTEMPTS` times
    fails with `worker_lost` instead, so a job that kills its worker cannot loop forever.

Sending a message for a job that has one is harmless: the claim is a compare-and-set, so a duplicate
delivery finds the job taken or finished and does nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from redis import Redis
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from stt_common import jobs
from stt_common.db import session_scope, utcnow
from stt_common.models import Job, JobStatus
from stt_common.queue import TRANSCRIBE_QUEUE, TRANSCRIBE_TASK

log = logging.getLogger(__name__)

# Where kombu's Redis transport keeps messages: a list per queue, a hash of delivered but
# unacknowledged messages (delivery tag -> [message, exchange, routing key]) and a sorted set of when
# each was delivered (delivery tag -> Unix time).
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"


@dataclass(frozen=True)
class BrokerView:
    """Job ids with a message waiting in the queue, and those with a message held by a worker, with
    how long ago the worker took it (the most recent, when there are several)."""

    waiting: frozenset[uuid.UUID]
    held: dict[uuid.UUID, float]


def _job_id(raw: bytes | str) -> uuid.UUID | None:
    """The job id a raw transcription message carries, or None for anything else."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # an unacked entry: [message, exchange, routing key]
            message = message[0]
        if message.get("headers", {}).get("task") != TRANSCRIBE_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return uuid.UUID(args[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _ids(raws: Iterable[bytes | str]) -> frozenset[uuid.UUID]:
    return frozenset(filter(None, map(_job_id, raws)))


def broker_view(redis: Redis, queue: str = TRANSCRIBE_QUEUE) -> BrokerView:
    """Read every transcription message in the broker (an LRANGE, an HGETALL and a ZRANGE)."""
    waiting = _ids(redis.lrange(queue, 0, -1))
    scored: list[tuple[bytes, float]] = redis.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True)  # type: ignore[assignment]
    taken_at = dict(scored)
    unacked: dict[bytes, bytes] = redis.hgetall(UNACKED_KEY)  # type: ignore[assignment]
    now = time.time()
    held: dict[uuid.UUID, float] = {}
    for tag, raw in unacked.items():
        job_id = _job_id(raw)
        if job_id is not None:
            age = now - float(taken_at.get(tag, now))
            held[job_id] = min(age, held.get(job_id, age))
    return BrokerView(waiting=waiting, held=held)


@dataclass(frozen=True)
class Reaped:
    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]


def candidates(session: Session, now: dt.datetime, grace_seconds: float) -> list[Job]:
    """Jobs that may have lost their message: old enough queued ones, and processing ones whose
    lease ran out."""
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.deleted_at.is_(None),
                or_(
                    and_(Job.status == JobStatus.queued, Job.created_at < now - dt.timedelta(seconds=grace_seconds)),
                    and_(Job.status == JobStatus.processing, Job.lease_expires_at < now),
                ),
            )
            .order_by(Job.created_at)
        )
    )


def reap(
    factory: sessionmaker[Session],
    redis: Redis,
    publish: Callable[[uuid.UUID], None],
    grace_seconds: float,
    max_attempts: int,
    max_hold_seconds: float,
) -> Reaped:
    """One pass. The database is read before the broker, so a job that moves on in between is seen
    with its old state: at worst it gets a harmless duplicate message. A queued job's message is held
    by a worker only briefly, or until its retry's countdown (at most `STT_TASK_RETRY_BACKOFF_MAX`):
    held longer than `max_hold_seconds`, its worker is taken to be dead."""
    with session_scope(factory) as session:
        found = [(job.id, job.status, job.attempts) for job in candidates(session, utcnow(), grace_seconds)]
    if not found:
        return Reaped([], [])
    view = broker_view(redis)
    requeue, exhausted = [], []
    for job_id, status, attempts in found:
        if job_id in view.waiting:
            continue
        if status == JobStatus.queued and view.held.get(job_id, math.inf) < max_hold_seconds:
            continue
        if status == JobStatus.processing and attempts >= max_attempts:
            exhausted.append(job_id)
        else:
            requeue.append(job_id)
    failed = []
    if exhausted:  # their job.failed events leave with the commit (events.publish_after_commit)
        with session_scope(factory) as session:
            for job_id in exhausted:
                if jobs.fail_lost(session, job_id, max_attempts):
                    failed.append(job_id)
    for job_id in requeue:
        publish(job_id)
    if requeue or failed:
        log.warning(
            "reaper: re-enqueued %d job(s) without a live message, failed %d whose workers died %d times",
            len(requeue),
            len(failed),
            max_attempts,
        )
    return Reaped(requeue, failed)
