"""Accepting an upload: check it is audio within limits, store it, record the queued job."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO
from urllib.parse import urlsplit

from celery import Celery
from fastapi import Form
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.idempotency import Idempotency, forget, remember
from stt_common import audio, faults, jobs
from stt_common.errors import (
    EmptyFile,
    ErrorCode,
    FileTooLarge,
    InvalidMetadata,
    TooManyRequests,
    TransientError,
    UnknownModel,
)
from stt_common.fetch import check_audio_url
from stt_common.model_folder import list_models
from stt_common.models import DEFAULT_TENANT, Job, JobStatus
from stt_common.queue import publish_transcription
from stt_common.settings import Settings
from stt_common.storage import Storage, audio_key, discard
from stt_common.webhooks import check_url

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 16


# The `format_text` form field of the create routes (docs/API.md, *Readable text*).
FormatTextField = Annotated[
    bool | None,
    Form(
        description="Punctuation, capitals, numbers as digits and suffix apostrophes in the text, words and "
        "subtitles (the recognizer's text stays in `raw_text`); default STT_FORMAT_TEXT (on)."
    ),
]


@dataclass(frozen=True)
class JobOptions:
    """What a client may set on a job (or on every job of a batch) besides the audio."""

    model: str
    webhook_url: str | None = None
    meta: dict[str, Any] | None = None
    batch_id: uuid.UUID | None = None
    tenant: str = DEFAULT_TENANT
    format_text: bool = True

    def new_job(self, **fields: Any) -> Job:
        """A job with these options and `fields` (its audio, status, place in a batch...)."""
        return Job(
            id=fields.pop("id", None) or uuid.uuid4(),
            tenant=self.tenant,
            model=self.model,
            batch_id=self.batch_id,
            webhook_url=self.webhook_url,
            meta=self.meta,
            format_text=self.format_text,
            **fields,
        )


def parse_metadata(raw: str | None) -> dict[str, Any] | None:
    """The `metadata` form field: a JSON object of at most 4 KB and 16 levels, stored and echoed back as
    given. NaN and Infinity are refused: they are not JSON, and the signed webhook body must be."""
    if raw is None or raw == "":
        return None
    if len(raw.encode()) > MAX_METADATA_BYTES:
        raise InvalidMetadata(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    if _nesting(raw) > MAX_METADATA_DEPTH:
        raise InvalidMetadata(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InvalidMetadata(f"metadata is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidMetadata("metadata must be a JSON object")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _nesting(text: str) -> int:
    """The deepest bracket level outside strings, counted before parsing: the parser recurses once per
    level (a RecursionError near 1000), and deep values break every later encoder of the job."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def job_options(
    settings: Settings,
    tenant: str,
    model: str | None,
    webhook_url: str | None,
    metadata: str | None,
    format_text: bool | None = None,
) -> JobOptions:
    """Check the form fields every create route shares, before any audio is looked at."""
    return JobOptions(
        model=resolve_model(settings, model),
        webhook_url=check_url(webhook_url, settings.webhook_allowed_hosts) if webhook_url else None,
        meta=parse_metadata(metadata),
        tenant=tenant,
        format_text=settings.format_text if format_text is None else format_text,
    )


def check_quota(session: Session, settings: Settings, tenant: str, adding: int) -> None:
    """At most `STT_MAX_ACTIVE_JOBS` queued or processing jobs per tenant. Two submissions racing may
    both pass and overshoot by one request's jobs; the limit is a guard, not an accounting."""
    active = (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant == tenant, Job.status.in_(jobs.ACTIVE), Job.deleted_at.is_(None))
        )
        or 0
    )
    if active + adding > settings.max_active_jobs:
        raise TooManyRequests(
            f"this tenant has {active} jobs queued or processing; the limit is {settings.max_active_jobs}. "
            "Retry once some have finished.",
            retry_after_s=30,
            code=ErrorCode.quota_exceeded,
        )


def resolve_model(settings: Settings, requested: str | None) -> str:
    name = requested or settings.default_model
    if name not in list_models(settings.models_dir):
        raise UnknownModel(f"unknown model {name[:128]!r}; GET /v1/models lists the available ones")
    return name


def clean_filename(name: str | None, *, keep_folders: bool = False) -> str | None:
    """Keep the client's filename for display only: no control characters, bounded, and no directories
    unless `keep_folders` (a zip member's path inside its archive, already checked not to climb out)."""
    if not name:
        return None
    path = name.replace("\\", "/")
    shown = path.strip("/") if keep_folders else path.rsplit("/", 1)[-1]
    shown = "".join(ch for ch in shown if ch.isprintable())
    return shown[-255:] or None


def accept_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    upload: BinaryIO,
    filename: str | None,
    options: JobOptions,
    batch_index: int | None = None,
) -> Job:
    """Validate, store and record (flushed, not committed). On failure nothing stays in storage.
    `filename` is shown as given: pass it through `clean_filename` first."""
    size = upload.seek(0, 2)  # measured, not taken from the client's headers
    upload.seek(0)
    if size == 0:
        raise EmptyFile("the uploaded file is empty")
    if size > settings.max_upload_bytes:
        raise FileTooLarge(f"the upload is larger than the limit of {settings.max_upload_bytes} bytes")
    info = audio.probe(upload)
    audio.check_limits(info, settings.max_audio_seconds)

    job_id = uuid.uuid4()
    stored = storage.put(audio_key(job_id), upload)
    try:
        job = options.new_job(
            id=job_id,
            status=JobStatus.queued,
            batch_index=batch_index,
            audio_key=stored.key,
            audio_sha256=stored.sha256,
            audio_bytes=stored.bytes,
            audio_format=info.format,
            filename=filename,
            duration_s=round(info.duration_s, 3) if info.duration_s is not None else None,
        )
        session.add(job)
        session.flush()
    except BaseException:
        discard(storage, stored.key)
        raise
    return job


def submit(
    session: Session,
    storage: Storage,
    settings: Settings,
    celery: Celery,
    upload: BinaryIO,
    filename: str | None,
    options: JobOptions,
    idempotency: Idempotency | None = None,
) -> Job:
    """Accept, commit, then enqueue one job (`commit_or_remove`, `enqueue_or_take_back`). The
    idempotency key is recorded in the job's own transaction."""
    check_quota(session, settings, options.tenant, 1)
    job = accept_upload(session, storage, settings, upload, clean_filename(filename), options)
    return _commit_and_enqueue(session, storage, celery, job, idempotency)


def submit_url(
    session: Session,
    storage: Storage,
    settings: Settings,
    celery: Celery,
    url: str,
    options: JobOptions,
    idempotency: Idempotency | None = None,
) -> Job:
    """Record and enqueue a job whose audio a worker will fetch from `url` (stt_common/fetch.py): the
    answer comes at once, the download happens once, in the worker."""
    check_quota(session, settings, options.tenant, 1)
    job = accept_url(session, settings, url, options)
    return _commit_and_enqueue(session, storage, celery, job, idempotency)


def accept_url(
    session: Session, settings: Settings, url: str, options: JobOptions, batch_index: int | None = None
) -> Job:
    """Check `url` as far as it can be checked at the door and record its queued job (flushed, not
    committed); its filename is the URL's last path segment until the worker has fetched it."""
    check_audio_url(url, settings.webhook_allowed_hosts)
    job = options.new_job(
        status=JobStatus.queued,
        batch_index=batch_index,
        source_url=url,
        filename=url_filename(url),
    )
    session.add(job)
    session.flush()
    return job


def url_filename(url: str) -> str | None:
    """The URL's last path segment, shown as the job's filename until the worker knows better."""
    try:
        return clean_filename(urlsplit(url).path.rsplit("/", 1)[-1] or None)
    except ValueError:  # not a URL at all: refused by `check_audio_url`
        return None


def _commit_and_enqueue(
    session: Session, storage: Storage, celery: Celery, job: Job, idempotency: Idempotency | None
) -> Job:
    """One job's submission from its commit on: the idempotency key in the same transaction, then the
    publish, or the whole job taken back."""
    with commit_or_remove(session, storage, [job]):
        if idempotency:
            remember(session, idempotency, job_id=job.id)

    def take_back() -> None:
        if idempotency:
            forget(session, idempotency)
        remove(session, storage, job.id)

    enqueue_or_take_back(celery, [job], take_back)
    return job


def remove(session: Session, storage: Storage, job_id: uuid.UUID | str, tenant: str | None = None) -> None:
    """Cancel the job if it has not ended, commit, then delete its audio (DELETE /v1/jobs/{id}, and the
    undoing of a submission the queue refused): `batches.remove` is the same for a batch."""
    key = jobs.delete(session, job_id, tenant)
    session.commit()
    discard(storage, key)


@contextmanager
def commit_or_remove(session: Session, storage: Storage, stored: list[Job]) -> Iterator[None]:
    """Commit what the block adds to a submission whose jobs' audio is stored; if the block or the commit
    fails (with an idempotency key, an IntegrityError: the same key committed a moment earlier), roll
    back and remove that audio. `stored` may grow inside the block."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        for job in stored:
            discard(storage, job.audio_key)
        raise


def enqueue_or_take_back(celery: Celery, queued: list[Job], take_back: Callable[[], None]) -> None:
    """After the commit, publish each queued job's id. If the broker refuses, `take_back` undoes the
    submission (rows hidden, audio removed, key forgotten) and the caller gets 503 `queue_unavailable`:
    nothing is left half-made. A crash between commit and publish leaves the jobs to the reaper."""
    faults.hit("api.after_commit")
    try:
        for job in queued:
            publish_transcription(celery, job.id)
    except Exception as exc:
        log.warning("publishing %d job(s) failed: %s", len(queued), exc)
        take_back()
        raise TransientError("the job queue is unavailable; retry shortly", code=ErrorCode.queue_unavailable) from exc
