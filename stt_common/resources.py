"""The public shape of jobs and batches, defined once: the HTTP API answers with these, webhook events
carry them as their `data`, and a batch's JSONL results are one job per line. A client that parses one
parses all three."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict
from typing import Any, Self

from pydantic import BaseModel, Field

from stt_common.db import utcnow
from stt_common.fetch import redacted
from stt_common.models import Batch, Job, JobStatus
from stt_common.transcript import Transcript


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code; see docs/API.md.")
    message: str = Field(description="Human-readable explanation.")
    job_id: str | None = Field(None, description="With `transcription_timeout`: the job, which goes on.")


class WordOut(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    confidence: float = Field(ge=0, le=1)


class SegmentOut(BaseModel):
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    text: str


class ResultSummaryOut(BaseModel):
    """A result in lists: the text only (GET the job for words and segments)."""

    text: str = Field(description="The transcript: formatted unless the job said `format_text=false`.")
    raw_text: str | None = Field(
        None, description="The recognizer's own text (lower case, no punctuation) when `text` is formatted."
    )
    duration_s: float | None = Field(None, description="Length of the audio transcribed, in seconds.")


class ResultOut(ResultSummaryOut):
    words: list[WordOut] = Field(description="Every word with its times.")
    segments: list[SegmentOut] = Field(description="Words grouped into subtitle-sized segments at pauses.")

    @classmethod
    def of(cls, result: dict[str, object]) -> ResultOut:
        transcript = Transcript.from_dict(result)
        return cls(
            text=transcript.text,
            raw_text=transcript.raw_text,
            duration_s=transcript.duration_s,
            words=[WordOut(**asdict(w)) for w in transcript.words],
            segments=[SegmentOut(**asdict(s)) for s in transcript.segments],
        )


class TimingsOut(BaseModel):
    queue_wait_s: float | None = Field(None, description="From acceptance to a worker starting it, in s (to the ms).")
    processing_s: float | None = Field(None, description="Decode plus inference in the worker, in s (to the ms).")
    real_time_factor: float | None = Field(None, description="processing_s / audio duration (4 decimals).")

    @classmethod
    def of(cls, job: Job) -> TimingsOut:
        return cls(
            queue_wait_s=_rounded(job.queue_wait_s, 3),
            processing_s=_rounded(job.processing_s, 3),
            real_time_factor=_rounded(job.real_time_factor, 4),
        )


def _rounded(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


class AudioOut(BaseModel):
    filename: str | None
    format: str | None
    bytes: int | None = Field(description="Null until a job's `audio_url` has been fetched.")
    sha256: str | None = Field(description="Of the bytes stored; null until a job's `audio_url` has been fetched.")
    duration_s: float | None
    source_url: str | None = Field(
        None, description="For a job submitted by URL: the URL's scheme, host and path (never its query)."
    )
    purged_at: dt.datetime | None = Field(None, description="When the audio was deleted under the retention policy.")


class JobSummaryOut(BaseModel):
    """A job as lists show it: everything but the result's words and segments."""

    id: uuid.UUID
    object: str = "job"
    status: JobStatus
    model: str
    batch_id: uuid.UUID | None = Field(None, description="The batch this job belongs to, if any.")
    batch_index: int | None = Field(None, description="Its file's position in the batch request.")
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = Field(None, description="As the client sent it.")
    format_text: bool = Field(description="Whether the result is formatted (punctuation, capitals, digits).")
    progress: float = Field(ge=0, le=1, description="Fraction of the audio transcribed so far.")
    eta_seconds: float | None = Field(
        None, description="Estimated seconds until a processing job finishes, from its progress so far."
    )
    attempts: int
    audio: AudioOut
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    timings: TimingsOut
    error: ErrorDetail | None
    result: ResultSummaryOut | None
    transcript_purged_at: dt.datetime | None = Field(
        None, description="When the transcript was deleted under the retention policy (`result` is then null)."
    )

    @classmethod
    def of(cls, job: Job) -> Self:
        error = ErrorDetail(code=job.error_code, message=job.error_message or "") if job.error_code else None
        result = None
        if job.status == JobStatus.succeeded and job.result is not None:
            result = cls._result(job.result)
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            batch_id=job.batch_id,
            batch_index=job.batch_index,
            webhook_url=job.webhook_url,
            metadata=job.meta,
            format_text=job.format_text,
            progress=job.progress,
            eta_seconds=eta_seconds(job),
            attempts=job.attempts,
            audio=AudioOut(
                filename=job.filename,
                format=job.audio_format,
                bytes=job.audio_bytes,
                sha256=job.audio_sha256,
                duration_s=job.duration_s,
                source_url=redacted(job.source_url) if job.source_url else None,
                purged_at=job.audio_purged_at,
            ),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timings=TimingsOut.of(job),
            error=error,
            result=result,
            transcript_purged_at=job.transcript_purged_at,
        )

    @staticmethod
    def _result(result: dict[str, Any]) -> ResultSummaryOut:
        transcript = Transcript.from_dict(result)
        return ResultSummaryOut(text=transcript.text, raw_text=transcript.raw_text, duration_s=transcript.duration_s)


class JobOut(JobSummaryOut):
    result: ResultOut | None  # the full result: words and segments too

    @staticmethod
    def _result(result: dict[str, Any]) -> ResultOut:
        return ResultOut.of(result)


def eta_seconds(job: Job, now: dt.datetime | None = None) -> float | None:
    """Time left at the pace so far: elapsed x (1 - progress) / progress."""
    if job.status != JobStatus.processing or not job.started_at or job.progress <= 0:
        return None
    elapsed = ((now or utcnow()) - job.started_at).total_seconds()
    return round(max(0.0, elapsed * (1 - job.progress) / job.progress), 1)


class BatchItemOut(BaseModel):
    index: int = Field(description="Position of the file in the request (archive members follow the files).")
    job_id: uuid.UUID
    filename: str | None
    status: JobStatus
    progress: float
    error: ErrorDetail | None = Field(None, description="Why the item was rejected or failed.")

    @classmethod
    def of(cls, job: Job) -> BatchItemOut:
        error = ErrorDetail(code=job.error_code, message=job.error_message or "") if job.error_code else None
        return cls(
            index=job.batch_index or 0,
            job_id=job.id,
            filename=job.filename,
            status=JobStatus(job.status),
            progress=job.progress,
            error=error,
        )


class BatchOut(BaseModel):
    id: uuid.UUID
    object: str = "batch"
    status: str = Field(description="`processing` until every job has ended, then `completed`.")
    model: str
    total: int = Field(description="Files in the batch, accepted and rejected.")
    counts: dict[str, int] = Field(description="Jobs by status; rejected files count as `failed`.")
    webhook_url: str | None
    metadata: dict[str, Any] | None
    created_at: dt.datetime
    completed_at: dt.datetime | None
    items: list[BatchItemOut] | None = Field(None, description="Every file in order; omitted with `items=false`.")

    @classmethod
    def of(cls, batch: Batch, counts: dict[str, int], items: list[Job] | None) -> BatchOut:
        return cls(
            id=batch.id,
            status="completed" if batch.completed_at else "processing",
            model=batch.model,
            total=batch.item_count,
            counts=counts,
            webhook_url=batch.webhook_url,
            metadata=batch.meta,
            created_at=batch.created_at,
            completed_at=batch.completed_at,
            items=None if items is None else [BatchItemOut.of(job) for job in items],
        )
