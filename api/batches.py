"""Batches as plain functions: read the items (repeated file parts, one zip archive, audio URLs), accept
each on its own, record the batch and its jobs in one transaction, then enqueue.

A bad item becomes a `failed` job with its own error code at once; the rest go ahead. If the queue
refuses a job, the whole batch is taken back (503 `queue_unavailable`), as for a single job.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import BinaryIO

from celery import Celery
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.idempotency import Idempotency, forget, remember
from api.submission import (
    JobOptions,
    accept_upload,
    accept_url,
    check_quota,
    clean_filename,
    commit_or_remove,
    enqueue_or_take_back,
    url_filename,
)
from stt_common import events, jobs, metrics
from stt_common.db import utcnow
from stt_common.errors import BatchNotFound, ErrorCode, FileTooLarge, InputError, InvalidArchive, TooManyFiles
from stt_common.models import Batch, Job, JobStatus, WebhookDelivery
from stt_common.settings import Settings
from stt_common.storage import Storage, discard
from stt_common.tenancy import get_owned

log = logging.getLogger(__name__)


@dataclass
class Item:
    filename: str | None  # as shown: cleaned (`clean_filename`)
    open: Callable[[], BinaryIO] | None  # the item's content, made when it is accepted; None: see `error`/`url`
    error: InputError | None = None
    url: str | None = None  # audio a worker fetches (`submission.accept_url`)


def upload_item(filename: str | None, content: BinaryIO) -> Item:
    """A `files` part: already spooled by the multipart parser."""
    return Item(clean_filename(filename), lambda: content)


def url_item(url: str) -> Item:
    """An `audio_urls` entry: checked when it is accepted, fetched by a worker."""
    return Item(url_filename(url), None, url=url)


# An archive is read only as far as its declarations allow: its central directory (entry count and size,
# from the end record, before zipfile parses it), then each member's method, size and compression ratio,
# and only then its content, one member at a time.
ENTRIES_PER_ITEM = 4  # room for the folders and macOS's __MACOSX/._ twins of each file
DIRECTORY_BYTES_PER_ENTRY = 1024
MAX_COMPRESSION_RATIO = 100  # speech deflates by 1.1-3x; a run of zeros by 1000x
RATIO_CHECKED_FROM = 1 << 20  # below a MB, a high ratio costs nothing
SPOOL_BYTES = 64 * 1024  # an extracted member past this goes to a temporary file, not memory
METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}  # others decompress a read without an output bound


@contextmanager
def archive_items(archive: BinaryIO, settings: Settings, room: int) -> Iterator[list[Item]]:
    """The members of a zip archive as items, while the archive is open. Nothing is extracted here: each
    item extracts its member when it is accepted. Directories and hidden files (__MACOSX/, .DS_Store)
    are skipped; member paths are kept for display only, and ones that climb out (`..`, `/x`) are
    refused as items."""
    max_entries = ENTRIES_PER_ITEM * settings.max_batch_items + 64
    _check_directory(archive, max_entries, settings.max_batch_items)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidArchive(f"the archive is not a readable zip file: {exc}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not _hidden(m.filename)]
        if len(members) > room:
            raise TooManyFiles.in_batch(settings.max_batch_items)
        budget = settings.max_upload_bytes  # for all members together
        items = []
        for member in members:
            error = _refusal(member, budget, settings.max_upload_bytes)
            if error is None:
                budget -= member.file_size
            climbs_out = error is not None and error.code == ErrorCode.unsafe_archive_path
            shown = clean_filename(member.filename, keep_folders=not climbs_out)
            items.append(Item(shown, None if error else partial(_extract, zf, member), error))
        yield items


def _check_directory(archive: BinaryIO, max_entries: int, limit: int) -> None:
    """zipfile parses the whole central directory when it opens an archive (300k empty entries cost
    125 MB): read its declared size and count from the end record first."""
    archive.seek(0)
    end = _end_record(archive)
    archive.seek(0)
    if end is None:
        raise InvalidArchive("the archive is not a readable zip file: no end of central directory")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > max_entries:
        raise TooManyFiles.in_batch(limit)
    if size > max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise InvalidArchive(f"the archive's directory is {size} bytes, more than its entries need")


def _end_record(archive: BinaryIO) -> list[int] | None:
    # zipfile's own end-record reader (ZIP64 included); it is private, but has not changed since 2.x.
    end: list[int] | None = getattr(zipfile, "_EndRecData")(archive)  # noqa: B009
    return end


def _hidden(name: str) -> bool:
    return any((part.startswith(".") and part != "..") or part.startswith("__MACOSX") for part in name.split("/"))


def _refusal(member: zipfile.ZipInfo, budget: int, limit: int) -> InputError | None:
    """Why a member is refused from its declarations alone, or None."""
    name = member.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        return InputError(f"{name}: the path leaves the archive's folder", code=ErrorCode.unsafe_archive_path)
    if member.compress_type not in METHODS:
        return InputError(
            f"{name}: compression method {member.compress_type} is not supported (stored and deflated are)",
            code=ErrorCode.unsupported_compression,
        )
    if member.file_size > budget:  # budget starts at the upload limit and only shrinks
        return FileTooLarge(
            f"{name}: larger than the limit of {limit} bytes (the archive's members together count towards it too)"
        )
    if member.file_size >= RATIO_CHECKED_FROM and member.file_size > MAX_COMPRESSION_RATIO * member.compress_size:
        return InputError(
            f"{name}: compressed {member.file_size / max(1, member.compress_size):.0f} to 1, more "
            f"than audio ever is ({MAX_COMPRESSION_RATIO} to 1 at most)",
            code=ErrorCode.compression_ratio_too_high,
        )
    return None


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> BinaryIO:
    """The member's content in a spooled temporary file. zipfile stops at the declared size and checks
    the CRC, so a member cannot grow past what `_refusal` saw."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the caller closes it)
    try:
        with zf.open(member) as source:
            shutil.copyfileobj(source, copy)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as exc:
        copy.close()
        raise InputError(
            f"{member.filename}: cannot be extracted: {exc}", code=ErrorCode.corrupt_archive_member
        ) from None
    copy.seek(0)
    return copy  # type: ignore[return-value]


def create(
    session: Session,
    storage: Storage,
    settings: Settings,
    celery: Celery,
    items: list[Item],
    options: JobOptions,
    idempotency: Idempotency | None = None,
) -> Batch:
    """Record the batch, its accepted and rejected jobs, commit, then enqueue the accepted ones."""
    if not items:
        raise InputError(
            "a batch needs at least one file (`files` parts, an `archive` or `audio_urls`)",
            code=ErrorCode.empty_batch,
            http_status=422,
        )
    check_quota(session, settings, options.tenant, sum(1 for item in items if item.error is None))
    batch = Batch(
        id=uuid.uuid4(),
        tenant=options.tenant,
        model=options.model,
        webhook_url=options.webhook_url,
        meta=options.meta,
        item_count=len(items),
        remaining=len(items),
        created_at=utcnow(),
    )
    item_options = replace(options, batch_id=batch.id)  # the batch's metadata is echoed on each job
    accepted: list[Job] = []
    refused: list[str] = []
    with commit_or_remove(session, storage, accepted):
        session.add(batch)
        session.flush()
        for index, item in enumerate(items):
            job = _accept(session, storage, settings, item, item_options, index)
            if job.status == JobStatus.queued:
                accepted.append(job)
            else:
                refused.append(job.error_code or "")
                events.job_finished(session, job.id)  # its job.failed event; counts the batch down
        if idempotency:
            remember(session, idempotency, batch_id=batch.id)
    enqueue_or_take_back(celery, accepted, lambda: _take_back(session, storage, batch.id, idempotency))
    for code in refused:  # failed jobs like any other: counted once the batch stands
        metrics.job_finished(settings.redis_url, "failed", code)
    return batch


def _accept(session: Session, storage: Storage, settings: Settings, item: Item, options: JobOptions, index: int) -> Job:
    """The item's queued job, or a failed one carrying why it was refused. The item's content exists
    only while it is checked and stored."""
    error = item.error
    try:
        if error is None and item.url is not None:
            return accept_url(session, settings, item.url, options, batch_index=index)
        if error is None and item.open is not None:
            with closing(item.open()) as content:
                return accept_upload(session, storage, settings, content, item.filename, options, batch_index=index)
    except InputError as exc:
        error = exc
    assert error is not None
    now = utcnow()
    job = options.new_job(
        status=JobStatus.failed,
        batch_index=index,
        filename=item.filename,
        created_at=now,
        finished_at=now,
        error_code=error.code,
        error_message=error.message[:2000],
    )
    session.add(job)
    session.flush()
    return job


def _take_back(session: Session, storage: Storage, batch_id: uuid.UUID, idempotency: Idempotency | None) -> None:
    """The queue refused the batch: drop its unsent events and its key, then remove it as DELETE does."""
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id, WebhookDelivery.attempts == 0))
    if idempotency:
        forget(session, idempotency)
    remove(session, storage, batch_id)


def get(session: Session, batch_id: uuid.UUID | str, tenant: str | None = None) -> Batch:
    """The tenant's live batch (`tenancy.get_owned`), as `jobs.get_job` is for jobs."""
    return get_owned(session, Batch, batch_id, tenant, BatchNotFound)


def items(session: Session, batch_id: uuid.UUID) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index)))


def remove(session: Session, storage: Storage, batch_id: uuid.UUID | str, tenant: str | None = None) -> None:
    """Cancel what has not finished, delete every job's audio and transcript, hide the batch."""
    batch = get(session, batch_id, tenant)
    batch_id = batch.id
    batch.deleted_at = utcnow()  # first, so that canceling its last jobs sends no batch.completed
    session.flush()
    audio_keys = [jobs.delete(session, job.id) for job in items(session, batch_id) if job.deleted_at is None]
    events.erase(session, batch_id=batch_id)
    session.commit()
    for audio_key in audio_keys:
        discard(storage, audio_key)
