"""Retention (KVKK/GDPR): a job's audio and transcript need not live forever. Each is kept for a time
after the job ends: the deployment's default (STT_AUDIO_RETENTION_SECONDS, STT_TRANSCRIPT_RETENTION_SECONDS;
unset keeps them until the job is deleted) unless the tenant has its own policy. A periodic purge (in the
webhooks worker) deletes what has expired and leaves the job row as a tombstone that says when.

The purge may run on several hosts at once: each row is taken with a compare-and-set, so each object is
purged and counted once; an object is deleted before its row forgets it, so a crash in between leaves a
row that the next purge finishes, never an object without a row.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from stt_common import events, metrics
from stt_common.db import session_scope, utcnow
from stt_common.errors import StorageUnavailable
from stt_common.models import Job, JobStatus, RetentionPolicy
from stt_common.settings import Settings
from stt_common.storage import Storage

log = logging.getLogger(__name__)
BATCH = 500  # rows per query: a large backlog is purged over several runs


@dataclass(frozen=True)
class Policy:
    audio_seconds: float | None  # None: kept until the job is deleted
    transcript_seconds: float | None


@dataclass(frozen=True)
class Purged:
    audio: int = 0
    transcripts: int = 0


def policy_for(session: Session, settings: Settings, tenant: str) -> Policy:
    own = session.get(RetentionPolicy, tenant)
    return Policy(
        own.audio_seconds if own and own.audio_seconds is not None else settings.audio_retention_seconds,
        own.transcript_seconds if own and own.transcript_seconds is not None else settings.transcript_retention_seconds,
    )


def set_policy(session: Session, tenant: str, audio_seconds: float | None, transcript_seconds: float | None) -> None:
    """The tenant's own policy (None for either: the deployment's default)."""
    own = session.get(RetentionPolicy, tenant)
    if audio_seconds is None and transcript_seconds is None:
        if own is not None:
            session.delete(own)
        return
    if own is None:
        own = RetentionPolicy(tenant=tenant)
        session.add(own)
    own.audio_seconds, own.transcript_seconds = audio_seconds, transcript_seconds


def purge(
    factory: sessionmaker[Session], storage: Storage, settings: Settings, now: dt.datetime | None = None
) -> Purged:
    """Delete every expired audio object and transcript (up to BATCH of each per tenant rule)."""
    now = now or utcnow()
    with factory() as session:
        overrides = list(session.scalars(select(RetentionPolicy)))
    audio = _rules(overrides, settings.audio_retention_seconds, lambda p: p.audio_seconds)
    transcripts = _rules(overrides, settings.transcript_retention_seconds, lambda p: p.transcript_seconds)
    purged_audio = sum(_purge_audio(factory, storage, where, now, seconds) for where, seconds in audio)
    purged_text = sum(_purge_transcripts(factory, where, now, seconds) for where, seconds in transcripts)
    if purged_audio or purged_text:
        log.info("retention: purged %d audio object(s) and %d transcript(s)", purged_audio, purged_text)
        metrics.retention_purged(settings.redis_url, "audio", purged_audio)
        metrics.retention_purged(settings.redis_url, "transcript", purged_text)
    return Purged(purged_audio, purged_text)


def _rules(
    overrides: list[RetentionPolicy], default: float | None, pick: Callable[[RetentionPolicy], float | None]
) -> list[tuple[ColumnElement[bool], float]]:
    """(which jobs, seconds) pairs: one per tenant with its own value, one for everyone else."""
    own = {p.tenant: seconds for p in overrides if (seconds := pick(p)) is not None}
    rules = [(Job.tenant == tenant, seconds) for tenant, seconds in own.items()]
    if default is not None:
        rules.append((Job.tenant.not_in(list(own)) if own else true(), default))
    return rules


def _purge_audio(
    factory: sessionmaker[Session], storage: Storage, where: ColumnElement[bool], now: dt.datetime, seconds: float
) -> int:
    with factory() as session:
        rows = session.execute(
            select(Job.id, Job.audio_key)
            .where(where, Job.audio_key.is_not(None), Job.finished_at <= now - dt.timedelta(seconds=seconds))
            .limit(BATCH)
        ).all()
    return sum(_purge_one_audio(factory, storage, job_id, key, now) for job_id, key in rows if key)


def _purge_one_audio(
    factory: sessionmaker[Session], storage: Storage, job_id: uuid.UUID, key: str, now: dt.datetime
) -> int:
    try:
        storage.delete(key)  # first: a crash after it leaves a row the next run finishes
    except StorageUnavailable as exc:
        log.warning("retention: audio of job %s not purged yet: %s", job_id, exc.message)
        return 0
    with session_scope(factory) as session:
        taken = session.execute(
            update(Job).where(Job.id == job_id, Job.audio_key == key).values(audio_key=None, audio_purged_at=now)
        )
    return int(taken.rowcount or 0)  # type: ignore[attr-defined]


def _purge_transcripts(
    factory: sessionmaker[Session], where: ColumnElement[bool], now: dt.datetime, seconds: float
) -> int:
    with factory() as session:
        ids = list(
            session.scalars(
                select(Job.id)
                .where(
                    where,
                    Job.transcript_purged_at.is_(None),
                    Job.status == JobStatus.succeeded,
                    Job.finished_at <= now - dt.timedelta(seconds=seconds),
                )
                .limit(BATCH)
            )
        )
    purged = 0
    for job_id in ids:
        with session_scope(factory) as session:
            taken = session.execute(
                update(Job)
                .where(and_(Job.id == job_id, Job.transcript_purged_at.is_(None)))
                .values(text=None, result=None, transcript_purged_at=now)
            )
            if taken.rowcount:  # type: ignore[attr-defined]
                events.erase(session, job_id=job_id)  # its events' bodies held the text too
                purged += 1
    return purged


def purge_audio_when_done(
    factory: sessionmaker[Session], storage: Storage, settings: Settings, job_id: uuid.UUID
) -> None:
    """For a tenant that keeps no audio (retention 0): delete the job's audio as soon as it has ended,
    instead of at the next purge. Runs after every job, so it reads two columns in one query, not the job
    (whose result may be large)."""
    with factory() as session:
        row = session.execute(
            select(Job.audio_key, RetentionPolicy.audio_seconds)
            .outerjoin(RetentionPolicy, RetentionPolicy.tenant == Job.tenant)
            .where(Job.id == job_id, Job.finished_at.is_not(None))
        ).first()
    if row is None or row.audio_key is None:
        return
    seconds = row.audio_seconds if row.audio_seconds is not None else settings.audio_retention_seconds
    if seconds != 0:
        return
    if _purge_one_audio(factory, storage, job_id, row.audio_key, utcnow()):
        metrics.retention_purged(settings.redis_url, "audio", 1)
