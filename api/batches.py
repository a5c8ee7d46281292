"""Batches as plain functions: read the items (repeated file parts and/or one zip archive), accept each
on its own, record the batch and its jobs in one transaction, then enqueue.

A bad item becomes a `failed` job with its own error code at once; the rest go ahead. If the queue
refuses a job, the whole batch is taken back (503 `queue_unavailable`), as for a single job.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from celery import Celery
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.idempotency import forget, remember
from api.uploads import JobOptions, accept_upload, check_quota, clean_filename
from stt_common import events, faults, jobs
from stt_common.db import utcnow
from stt_common.errors import InputError, NotFound, TransientError
from stt_common.models import Batch, Job, JobStatus, WebhookDelivery
from stt_common.queue import publish_transcription
from stt_common.settings import Settings
from stt_common.storage import LocalStorage

log = logging.getLogger(__name__)


class BatchNotFound(NotFound):
    code = "batch_not_found"


@dataclass
class Item:
    filename: str | None
    file: BinaryIO | None  # None when the item could not even be read (its error says why)
    error: InputError | None = None


def archive_items(archive: BinaryIO, settings: Settings, room: int) -> Iterator[Item]:
    """The members of a zip archive as items, each copied out within the size limits. Directories and
    hidden files (__MACOSX/, .DS_Store) are skipped; member paths are kept for display only."""
    try:
        members = [m for m in zipfile.ZipFile(archive).infolist()
                   if not m.is_dir() and not any(part.startswith((".", "__MACOSX"))
                                                  for part in m.filename.split("/"))]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"the archive is not a readable zip file: {exc}", code="invalid_archive",
                         http_status=422) from None
    if len(members) > room:
        raise TooManyItems(settings.max_batch_items)
    archive.seek(0)
    with zipfile.ZipFile(archive) as zf:
        budget = settings.max_upload_bytes
        for member in members:
            name = member.filename
            if member.file_size > budget:  # budget starts at the upload limit and only shrinks
                yield Item(name, None, InputError(
                    f"{name}: larger than the limit of {settings.max_upload_bytes} bytes (the archive's "
                    "members together count towards it too)", code="file_too_large"))
                continue
            copy = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 (the item owns it)
            try:
                with zf.open(member) as source:  # reads at most file_size bytes and checks the CRC
                    shutil.copyfileobj(source, copy)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
                copy.close()
                yield Item(name, None, InputError(f"{name}: cannot be extracted: {exc}", code="corrupt_archive_member"))
                continue
            budget -= member.file_size
            copy.seek(0)
            yield Item(name, copy)  # type: ignore[arg-type]


class TooManyItems(InputError):
    code = "too_many_files"
    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"a batch holds at most {limit} files (STT_MAX_BATCH_ITEMS)")


def create(session: Session, storage: LocalStorage, settings: Settings, celery: Celery, items: list[Item],
           options: JobOptions, idempotency: tuple[str, str] | None = None) -> Batch:
    """Record the batch, its accepted and rejected jobs, commit, then enqueue the accepted ones."""
    if not items:
        raise InputError("a batch needs at least one file (`files` parts or an `archive`)", code="empty_batch",
                         http_status=422)
    check_quota(session, settings, options.tenant, sum(1 for item in items if item.error is None))
    batch = Batch(id=uuid.uuid4(), tenant=options.tenant, model=options.model, webhook_url=options.webhook_url,
                  meta=options.meta, item_count=len(items), remaining=len(items), created_at=utcnow())
    session.add(batch)
    session.flush()
    item_options = replace(options, batch_id=batch.id, meta=None)
    accepted: list[Job] = []
    try:
        for index, item in enumerate(items):
            job = _accept(session, storage, settings, item, item_options, index)
            if job.status == JobStatus.queued:
                accepted.append(job)
            else:
                events.job_finished(session, job.id)  # its job.failed event; counts the batch down
        if idempotency:
            remember(session, *idempotency, batch_id=batch.id)
        session.commit()
    except BaseException:
        session.rollback()
        events.discard_new(session)
        for job in accepted:
            if job.audio_key:
                storage.delete(job.audio_key)
        raise
    faults.hit("api.after_commit")
    try:
        for job in accepted:
            publish_transcription(celery, job.id)
    except Exception as exc:
        log.warning("publishing batch %s failed: %s", batch.id, exc)
        _take_back(session, storage, batch.id, idempotency[0] if idempotency else None)
        raise TransientError("the job queue is unavailable; retry shortly", code="queue_unavailable") from exc
    return batch


def _accept(session: Session, storage: LocalStorage, settings: Settings, item: Item, options: JobOptions,
            index: int) -> Job:
    """The item's queued job, or a failed one carrying why it was refused."""
    error = item.error
    if error is None and item.file is not None:
        try:
            return accept_upload(session, storage, settings, item.file, item.filename, options, batch_index=index)
        except InputError as exc:
            error = exc
    assert error is not None
    now = utcnow()
    job = Job(id=uuid.uuid4(), status=JobStatus.failed, tenant=options.tenant, model=options.model,
              batch_id=options.batch_id,
              batch_index=index, webhook_url=options.webhook_url, audio_sha256="", audio_bytes=0,
              filename=clean_filename(item.filename), created_at=now, finished_at=now,
              error_code=error.code, error_message=error.message[:2000])
    session.add(job)
    session.flush()
    return job


def _take_back(session: Session, storage: LocalStorage, batch_id: uuid.UUID, key: str | None) -> None:
    """The queue refused the batch: drop its unsent events and its key, then remove it as DELETE does."""
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id,
                                                  WebhookDelivery.attempts == 0))
    if key:
        forget(session, key)
    remove(session, storage, batch_id)


def get(session: Session, batch_id: uuid.UUID, tenant: str | None = None) -> Batch:
    """As `jobs.get_job`: another tenant's batch is "not found"."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.deleted_at is not None or (tenant is not None and batch.tenant != tenant):
        raise BatchNotFound(f"no batch with id {batch_id}")
    return batch


def parse_batch_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise BatchNotFound(f"no batch with id {raw[:64]!r}") from None


def items(session: Session, batch_id: uuid.UUID) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index)))


def remove(session: Session, storage: LocalStorage, batch_id: uuid.UUID, tenant: str | None = None) -> None:
    """Cancel what has not finished, delete every job's audio and transcript, hide the batch."""
    batch = get(session, batch_id, tenant)
    batch.deleted_at = utcnow()  # first, so that canceling its last jobs sends no batch.completed
    session.flush()
    audio_keys = [jobs.delete(session, job.id) for job in items(session, batch_id) if job.deleted_at is None]
    events.erase(session, batch_id=batch_id)
    session.commit()
    events.discard_new(session)
    for audio_key in audio_keys:
        if audio_key:
            storage.delete(audio_key)
