"""One job, start to finish, as a plain function: claim → decode → transcribe → store.

Each database step is its own short transaction, so a long transcription holds no connection or lock.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from stt_common import audio, faults, fetch, jobs, logs, metrics, retention
from stt_common.db import session_scope
from stt_common.errors import AudioMissing, ErrorCode, InputError, TransientError, is_transient
from stt_common.models import Job
from stt_common.settings import Settings
from stt_common.storage import Storage, audio_key, discard
from worker.formatting import Formatter
from worker.recognizer import Recognizer, Timed

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"  # another delivery owns or finished the job, or it was canceled
    discarded = "discarded"  # finished, but the job was canceled or taken over meanwhile


@dataclass
class WorkerContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    storage: Storage
    recognizers: Mapping[str, Recognizer]  # committed webhook events leave by the factory's after-commit hook
    formatter: Formatter | None = None  # None: STT_FORMAT_TEXT off and no formatter folder


def run_job(ctx: WorkerContext, job_id: uuid.UUID) -> Outcome:
    """Raises TransientError when a retry may succeed; every other failure ends the job `failed`."""
    token = logs.current_job.set(str(job_id))  # every log line of this job carries its id (JSON logs)
    try:
        outcome = _run(ctx, job_id)
        if outcome in (Outcome.succeeded, Outcome.failed):
            _keep_no_audio(ctx, job_id)
        return outcome
    finally:
        logs.current_job.reset(token)


def _keep_no_audio(ctx: WorkerContext, job_id: uuid.UUID) -> None:
    """Retention 0: the audio goes as soon as the job has ended (best effort: else the purge takes it)."""
    try:
        retention.purge_audio_when_done(ctx.session_factory, ctx.storage, ctx.settings, job_id)
    except Exception as exc:
        log.warning("job %s: audio not purged at once (%s); the retention purge will", job_id, exc.__class__.__name__)


def _run(ctx: WorkerContext, job_id: uuid.UUID) -> Outcome:
    with session_scope(ctx.session_factory) as session:
        attempt = jobs.claim(session, job_id, ctx.settings.job_lease_seconds, ctx.settings.job_max_attempts)
        job = session.get(Job, job_id) if attempt is not None else None
        model, key, sha256, seconds = (
            (job.model, job.audio_key, job.audio_sha256, job.duration_s) if job else ("", None, None, None)
        )
        source_url = job.source_url if job else None
        format_text = bool(job and job.format_text)
        waited = (job.started_at - job.created_at).total_seconds() if job and job.started_at else None
    if attempt is None:
        log.info("job %s: not claimable (duplicate delivery, canceled or finished); skipped", job_id)
        return Outcome.skipped
    log.info("job %s: attempt %d started on model %s", job_id, attempt, model)

    started = time.perf_counter()
    try:
        with LeaseKeeper(ctx, job_id, attempt) as lease:
            if key is None and source_url:  # submitted by URL and not fetched yet (a retry finds it fetched)
                key, sha256, seconds = _fetch_source(ctx, job_id, attempt, source_url)
            timed = _transcribe(ctx, model, key, sha256, seconds, ProgressReporter(ctx, job_id, attempt, lease))
            if format_text:
                timed = replace(timed, transcript=_formatter(ctx).format(timed.transcript, ctx.settings.segment_rules))
            faults.hit("worker.before_complete")
    except JobLost:
        log.info("job %s: canceled or taken over while running; stopped", job_id)
        return Outcome.discarded
    except InputError as exc:
        return _fail(ctx, job_id, attempt, exc.code, exc.message)
    except Exception as exc:
        if is_transient(exc):
            _release(ctx, job_id, attempt)
            raise TransientError(f"transient failure: {exc.__class__.__name__}") from exc
        log.exception("job %s: unexpected error", job_id)
        return _fail(ctx, job_id, attempt, ErrorCode.internal_error, f"transcription failed: {exc.__class__.__name__}")
    processing_s = time.perf_counter() - started

    try:
        with session_scope(ctx.session_factory) as session:
            stored = jobs.complete(session, job_id, attempt, timed.transcript, processing_s)
    except Exception as exc:
        if is_transient(exc):
            _release(ctx, job_id, attempt)
            raise TransientError(f"could not store the result: {exc.__class__.__name__}") from exc
        raise
    if not stored:
        log.info("job %s: canceled or taken over while running; result discarded", job_id)
        return Outcome.discarded
    duration = timed.transcript.duration_s
    metrics.job_finished(
        ctx.settings.redis_url,
        "succeeded",
        processing_s=processing_s,
        queue_wait_s=waited,
        rtf=processing_s / duration if duration else None,
    )
    log.info("job %s: succeeded in %.3f s (audio %.2f s)", job_id, processing_s, timed.transcript.duration_s)
    return Outcome.succeeded


class JobLost(Exception):
    """This attempt no longer owns the job: it was canceled or another worker took it over."""


class LeaseKeeper:
    """Renews the running job's lease from a background thread every third of the lease, so the lease
    only has to outlast a dead worker, not the longest job. Sets `lost` when this attempt no longer
    owns the job (canceled, or taken over after a stall); the progress reporter then stops the job."""

    def __init__(self, ctx: WorkerContext, job_id: uuid.UUID, attempt: int) -> None:
        self.ctx, self.job_id, self.attempt = ctx, job_id, attempt
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.settings.job_lease_seconds / 3):
            try:
                with session_scope(self.ctx.session_factory) as session:
                    owned = jobs.renew_lease(session, self.job_id, self.attempt, self.ctx.settings.job_lease_seconds)
            except Exception as exc:  # the database is away: keep trying while the lease lasts
                log.warning("job %s: lease not renewed (%s)", self.job_id, exc.__class__.__name__)
                continue
            if not owned:
                self.lost.set()
                return


class ProgressReporter:
    """Writes the job's progress (which renews its lease too) at most every `progress_interval_seconds`,
    and stops the job (JobLost) once its lease keeper saw it canceled or taken over."""

    def __init__(self, ctx: WorkerContext, job_id: uuid.UUID, attempt: int, lease: LeaseKeeper) -> None:
        self.ctx, self.job_id, self.attempt, self.lease = ctx, job_id, attempt, lease
        self.last = time.monotonic()

    def __call__(self, fraction: float) -> None:
        if self.lease.lost.is_set():
            raise JobLost(str(self.job_id))
        now = time.monotonic()
        if now - self.last < self.ctx.settings.progress_interval_seconds:
            return
        self.last = now
        try:
            with session_scope(self.ctx.session_factory) as session:
                owned = jobs.report_progress(
                    session, self.job_id, self.attempt, fraction, self.ctx.settings.job_lease_seconds
                )
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("job %s: progress not recorded (%s)", self.job_id, exc.__class__.__name__)
            return  # progress is best effort; the result write decides
        if not owned:
            raise JobLost(str(self.job_id))


def _fetch_source(ctx: WorkerContext, job_id: uuid.UUID, attempt: int, url: str) -> tuple[str, str, float | None]:
    """Download the job's audio_url once into the store, with an upload's checks; the job then holds
    its audio as an uploaded one does. Returns (key, sha256, duration)."""
    settings = ctx.settings
    log.info("job %s: fetching %s", job_id, fetch.redacted(url))
    with tempfile.TemporaryDirectory(prefix="stt-fetch-") as folder:
        path = Path(folder) / "audio"
        with path.open("wb") as out:
            fetched = fetch.download(
                url,
                out,
                max_bytes=settings.max_upload_bytes,
                deadline_s=settings.url_fetch_timeout_seconds,
                allowlist=settings.webhook_allowed_hosts,
            )
        with path.open("rb") as source:
            try:
                info = audio.probe(source)
            except InputError as exc:
                what = fetched.content_type or "no content type"
                raise InputError(
                    f"audio_url did not give audio ({what}): {exc.message}", code=ErrorCode.url_not_audio
                ) from None
            audio.check_limits(info, settings.max_audio_seconds)
            stored = ctx.storage.put(audio_key(job_id), source)
    try:
        with session_scope(ctx.session_factory) as session:
            attached = jobs.attach_audio(session, job_id, attempt, stored, info, fetched.filename, fetch.redacted(url))
    except BaseException:
        discard(ctx.storage, stored.key)
        raise
    if not attached:
        discard(ctx.storage, stored.key)
        raise JobLost(str(job_id))
    log.info("job %s: fetched %d bytes of %s", job_id, stored.bytes, info.format)
    duration = round(info.duration_s, 3) if info.duration_s is not None else None
    return stored.key, stored.sha256, duration


def _transcribe(
    ctx: WorkerContext,
    model: str,
    key: str | None,
    sha256: str | None,
    seconds: float | None,
    progress: ProgressReporter,
) -> Timed:
    """The stored audio, fetched as a private local file (from a bucket, or the local store's own file) and
    checked against its sha256 at upload, transcribed by the job's model."""
    recognizer = ctx.recognizers.get(model)
    if recognizer is None:
        raise InputError(f"model {model!r} is not loaded by this worker", code=ErrorCode.model_unavailable)
    if not key:
        raise AudioMissing("the job's audio is no longer in storage")
    with ctx.storage.fetch(key, sha256) as path:
        return recognizer.transcribe_file(
            path, ctx.settings.max_audio_seconds, expected_seconds=seconds, on_progress=progress
        )


def _formatter(ctx: WorkerContext) -> Formatter:
    if ctx.formatter is None:
        raise InputError(
            "this worker has no formatter (STT_FORMATTER_DIR); submit with format_text=false",
            code=ErrorCode.model_unavailable,
        )
    return ctx.formatter


def _fail(ctx: WorkerContext, job_id: uuid.UUID, attempt: int | None, code: str, message: str) -> Outcome:
    """End the job `failed` with its code (`attempt=None`: whichever attempt holds it) and count it; its
    event leaves with the commit."""
    with session_scope(ctx.session_factory) as session:
        failed = jobs.fail(session, job_id, attempt, code, message)
    if failed:
        metrics.job_finished(ctx.settings.redis_url, "failed", code)
    log.info("job %s: failed with %s", job_id, code)
    return Outcome.failed


def _release(ctx: WorkerContext, job_id: uuid.UUID, attempt: int) -> None:
    try:
        with session_scope(ctx.session_factory) as session:
            jobs.release(session, job_id, attempt)
    except Exception:  # the lease expiry reclaims it if even this fails
        log.warning("job %s: could not release after a transient failure", job_id)


def fail_exhausted(ctx: WorkerContext, job_id: uuid.UUID, message: str) -> None:
    """The last retry failed: end the job instead of leaving it queued forever."""
    _fail(ctx, job_id, None, ErrorCode.retries_exhausted, message)
