"""Response bodies of the HTTP API (the OpenAPI schema at /docs is generated from these)."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field

from stt_common.models import Job, JobStatus


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


class ResultOut(BaseModel):
    text: str
    words: list[WordOut]


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
    progress: float = Field(ge=0, le=1)
    attempts: int
    audio: AudioOut
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    timings: TimingsOut
    error: ErrorDetail | None
    result: ResultOut | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        error = ErrorDetail(code=job.error_code, message=job.error_message or "") if job.error_code else None
        result = None
        if job.status == JobStatus.succeeded and job.result is not None:
            result = ResultOut(text=job.result["text"], words=job.result.get("words", []))
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            model=job.model,
            progress=job.progress,
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
