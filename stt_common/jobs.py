"""The job state machine. Every transition is a compare-and-set UPDATE, so a duplicate or late
delivery of the same message is a no-op. Helpers flush; callers commit at their boundary.
A transition to a terminal state writes its webhook event and counts down its batch in the same
transaction (`stt_common/events.py`).

    queued ──claim──▶ processing ──complete──▶ succeeded
      │                  │  └──────fail──────▶ failed
      └──cancel──────────┴─────cancel────────▶ canceled
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, CursorResult, Update, and_, or_, select, tuple_, update
from sqlalchemy.orm import Session

from stt_common import events
from stt_common.db import utcnow
from stt_common.errors import ErrorCode, InputError, JobNotFound
from stt_common.models import Job, JobStatus
from stt_common.tenancy import get_owned, parse_id

if TYPE_CHECKING:
    from stt_common.audio import AudioInfo
    from stt_common.storage import StoredObject
from stt_common.transcript import Transcript

ACTIVE = (JobStatus.queued, JobStatus.processing)


def parse_job_id(raw: str) -> uuid.UUID:
    """A job id from a message or a URL; a malformed one is "not found"."""
    return parse_id(Job, raw, JobNotFound)


def get_job(session: Session, job_id: uuid.UUID | str, tenant: str | None = None) -> Job:
    """The tenant's live job (`tenancy.get_owned`): another tenant's is "not found", as a missing one."""
    return get_owned(session, Job, job_id, tenant, JobNotFound)


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


def _encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, ident = raw.split("|", 1)
        return dt.datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("the cursor is not one this service issued", code=ErrorCode.invalid_cursor) from exc


def list_jobs(session: Session, *, tenant: str, status: JobStatus | None, cursor: str | None, limit: int) -> Page:
    """The tenant's jobs, newest first, keyset-paginated on (created_at, id) so pages stay stable while
    jobs arrive."""
    query = select(Job).where(Job.tenant == tenant, Job.deleted_at.is_(None))
    if status is not None:
        query = query.where(Job.status == status)
    if cursor:
        created, ident = _decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created, ident))
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(jobs=rows, next_cursor=_encode_cursor(rows[-1]) if more and rows else None)


def _changed_one(session: Session, statement: Update) -> bool:
    """Execute a compare-and-set UPDATE; True when it matched (and so changed) exactly one row."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1


def claim(session: Session, job_id: uuid.UUID, lease_seconds: int, max_attempts: int) -> int | None:
    """Take a queued job, or one whose worker's lease ran out (the worker died) if it has attempts
    left. Returns the attempt number, or None when another delivery already owns or finished it."""
    now = utcnow()
    claimable = or_(
        Job.status == JobStatus.queued,
        and_(Job.status == JobStatus.processing, Job.lease_expires_at < now, Job.attempts < max_attempts),
    )
    changed = _changed_one(
        session,
        update(Job)
        .where(Job.id == job_id, Job.deleted_at.is_(None), claimable)
        .values(
            status=JobStatus.processing,
            attempts=Job.attempts + 1,
            started_at=now,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            progress=0.0,
        ),
    )
    if not changed:
        return None
    attempt = session.scalar(select(Job.attempts).where(Job.id == job_id))
    session.flush()
    return attempt


def _owned(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.status == JobStatus.processing, Job.attempts == attempt)


def report_progress(session: Session, job_id: uuid.UUID, attempt: int, progress: float, lease_seconds: int) -> bool:
    """Record progress and renew the lease. False when this attempt no longer owns the job (it was
    canceled or taken over), which tells the worker to stop."""
    return _changed_one(
        session,
        update(Job)
        .where(_owned(job_id, attempt))
        .values(
            progress=min(max(progress, 0.0), 0.99), lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds)
        ),
    )


def renew_lease(session: Session, job_id: uuid.UUID, attempt: int, lease_seconds: int) -> bool:
    """The running worker's heartbeat. False when this attempt no longer owns the job."""
    return _changed_one(
        session,
        update(Job)
        .where(_owned(job_id, attempt))
        .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds)),
    )


def attach_audio(
    session: Session,
    job_id: uuid.UUID,
    attempt: int,
    stored: StoredObject,
    info: AudioInfo,
    filename: str | None,
    source: str,
) -> bool:
    """A job submitted by URL gets the audio its worker fetched, as an upload would have it; `source`
    replaces the URL (a presigned query must not stay). Only if this attempt still owns the job."""
    duration = round(info.duration_s, 3) if info.duration_s is not None else None
    return _changed_one(
        session,
        update(Job)
        .where(_owned(job_id, attempt), Job.audio_key.is_(None))
        .values(
            audio_key=stored.key,
            audio_sha256=stored.sha256,
            audio_bytes=stored.bytes,
            audio_format=info.format,
            duration_s=duration,
            filename=filename,
            source_url=source,
        ),
    )


def complete(session: Session, job_id: uuid.UUID, attempt: int, transcript: Transcript, processing_s: float) -> bool:
    """Store the result, only if this attempt still owns the job."""
    job = session.get(Job, job_id)
    if job is None:
        return False
    now = utcnow()
    started = job.started_at or now
    return _finished(
        session,
        job_id,
        _changed_one(
            session,
            update(Job)
            .where(_owned(job_id, attempt))
            .values(
                status=JobStatus.succeeded,
                finished_at=now,
                progress=1.0,
                lease_expires_at=None,
                text=transcript.text,
                result=transcript.to_dict(),
                duration_s=transcript.duration_s,
                queue_wait_s=(started - job.created_at).total_seconds(),
                processing_s=processing_s,
                real_time_factor=processing_s / transcript.duration_s if transcript.duration_s else None,
            ),
        ),
    )


def _finished(session: Session, job_id: uuid.UUID, changed: bool) -> bool:
    if changed:
        events.job_finished(session, job_id)
    return changed


def fail(session: Session, job_id: uuid.UUID, attempt: int | None, code: str, message: str) -> bool:
    """Mark the job failed. With `attempt=None` any active job may be failed (final retry exhausted)."""
    where = _owned(job_id, attempt) if attempt is not None else and_(Job.id == job_id, Job.status.in_(ACTIVE))
    return _finished(
        session,
        job_id,
        _changed_one(
            session,
            update(Job)
            .where(where)
            .values(
                status=JobStatus.failed,
                finished_at=utcnow(),
                lease_expires_at=None,
                error_code=code,
                error_message=message[:2000],
            ),
        ),
    )


def fail_lost(session: Session, job_id: uuid.UUID, max_attempts: int) -> bool:
    """End a job whose lease ran out after its last allowed attempt: its workers keep dying on it."""
    return _finished(
        session,
        job_id,
        _changed_one(
            session,
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == JobStatus.processing,
                Job.lease_expires_at < utcnow(),
                Job.attempts >= max_attempts,
            )
            .values(
                status=JobStatus.failed,
                finished_at=utcnow(),
                lease_expires_at=None,
                error_code=ErrorCode.worker_lost,
                error_message=f"the worker running this job stopped (killed or out of memory) on each of "
                f"{max_attempts} attempts",
            ),
        ),
    )


def release(session: Session, job_id: uuid.UUID, attempt: int) -> bool:
    """Give a job back to the queue after a transient failure, so a retry can claim it."""
    return _changed_one(
        session,
        update(Job).where(_owned(job_id, attempt)).values(status=JobStatus.queued, lease_expires_at=None),
    )


def delete(session: Session, job_id: uuid.UUID | str, tenant: str | None = None) -> str | None:
    """Cancel the job if still active, drop its transcript (and its webhook events' copies of it) and hide
    it. Returns the audio key to remove from storage after the commit (None if the job had none)."""
    job = get_job(session, job_id, tenant)
    job_id = job.id
    now = utcnow()
    canceled = _changed_one(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(status=JobStatus.canceled, finished_at=now, lease_expires_at=None),
    )
    session.refresh(job)
    key = job.audio_key
    job.audio_key = None
    job.text = None
    job.result = None
    job.deleted_at = now
    session.flush()
    _finished(session, job_id, canceled)
    events.erase(session, job_id=job_id)
    return key


def rehearse(session: Session, lease_seconds: int) -> None:
    """Run a job's statements once inside a transaction that is rolled back: the connection opens
    and the statements compile at start-up instead of on the first real job. Leaves no trace."""
    job = Job(id=uuid.uuid4(), model="warm-up", audio_sha256="0" * 64, audio_bytes=0)
    session.add(job)
    session.flush()
    attempt = claim(session, job.id, lease_seconds, max_attempts=1)
    if attempt is not None:
        complete(session, job.id, attempt, Transcript(text="", duration_s=1.0), 0.0)
    session.get(Job, job.id)
    session.rollback()
