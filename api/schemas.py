"""Response bodies of the HTTP API (the OpenAPI schema at /docs is generated from these)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict

from pydantic import BaseModel, Field

from stt_common.db import utcnow
from stt_common.models import Job, JobStatus
from stt_common.transcript import Transcript


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code; see docs/API.md.")
    message: str = Field(description="Human-readable explanation.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class WordOut(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    confidence: float = Field(ge=0, le=1)


class SegmentOut(BaseModel):
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    text: str


class ResultOut(BaseModel):
    text: str
    duration_s: float | None = Field(None, description="Length of the audio transcribed, in seconds.")
    words: list[WordOut] | None = Field(None, description="Every word with its times; omitted in lists.")
    segments: list[SegmentOut] | None = Field(
        None, description="Words grouped into subtitle-sized segments at pauses; omitted in lists."
    )

    @classmethod
    def of(cls, result: dict[str, object], *, detail: bool = True) -> ResultOut:
        transcript = Transcript.from_dict(result)
        if not detail:
            return cls(text=transcript.text, duration_s=transcript.duration_s)
        return cls(
            text=transcript.text, duration_s=transcript.duration_s,
            words=[WordOut(**asdict(w)) for w in transcript.words],
            segments=[SegmentOut(**asdict(s)) for s in transcript.segments],
        )


class TimingsOut(BaseModel):
    queue_wait_s: float | None = Field(None, description="From acceptance to a worker starting it.")
    processing_s: float | None = Field(None, description="Decode plus inference, in the worker.")
    real_time_factor: float | None = Field(None, description="processing_s / audio duration.")


class AudioOut(BaseModel):
    filename: str | None
    format: str | None
    bytes: int
    sha256: str
    duration_s: float | None


class JobOut(BaseModel):
    id: uuid.UUID
    object: str = "job"
    status: JobStatus
    model: str
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
    result: ResultOut | None

    @classmethod
    def of(cls, job: Job, *, detail: bool = True) -> JobOut:
        error = ErrorDetail(code=job.error_code, message=job.error_message or "") if job.error_code else None
        result = None
        if job.status == JobStatus.succeeded and job.result is not None:
            result = ResultOut.of(job.result, detail=detail)
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            progress=job.progress,
            eta_seconds=eta_seconds(job),
            attempts=job.attempts,
            audio=AudioOut(filename=job.filename, format=job.audio_format, bytes=job.audio_bytes,
                           sha256=job.audio_sha256, duration_s=job.duration_s),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timings=TimingsOut(queue_wait_s=job.queue_wait_s, processing_s=job.processing_s,
                               real_time_factor=job.real_time_factor),
            error=error,
            result=result,
        )


def eta_seconds(job: Job, now: dt.datetime | None = None) -> float | None:
    """Time left at the pace so far: elapsed x (1 - progress) / progress."""
    if job.status != JobStatus.processing or not job.started_at or job.progress <= 0:
        return None
    elapsed = ((now or utcnow()) - job.started_at).total_seconds()
    return round(max(0.0, elapsed * (1 - job.progress) / job.progress), 1)


class JobList(BaseModel):
    object: str = "list"
    data: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next (older) page.")


class ModelOut(BaseModel):
    name: str
    language: str
    sample_rate: int
    variants: list[str]
    default: bool
    description: str
    metrics: dict[str, object]


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelOut]


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]
