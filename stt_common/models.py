"""ORM models. The `jobs` table is the record of every job and holds its state machine."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from stt_common.db import Base, UTCDateTime, utcnow


class JobStatus(enum.StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)

    # The upload. `audio_key` names the object in storage; the client's filename is kept for display only.
    audio_key: Mapped[str | None] = mapped_column(String(255))
    audio_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    audio_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    audio_format: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(255))
    duration_s: Mapped[float | None] = mapped_column(Float)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    text: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    queue_wait_s: Mapped[float | None] = mapped_column(Float)
    processing_s: Mapped[float | None] = mapped_column(Float)
    real_time_factor: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'processing', 'succeeded', 'failed', 'canceled')", name="status"
        ),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` on a create request, and what it created. The same key with the
    same request returns the same object; with a different request it is refused."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)  # route, fields and file digest
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
