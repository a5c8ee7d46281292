"""ORM models. The `jobs` table is the record of every job and holds its state machine; a batch groups
jobs; `webhook_deliveries` is the outbox of events, written in the transaction that ends a job."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from stt_common.db import Base, UTCDateTime, utcnow

DEFAULT_TENANT = "default"  # every object's tenant while authentication is off


class JobStatus(enum.StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class Batch(Base):
    """Many jobs submitted together. `remaining` counts its jobs not yet in a terminal state; the
    transaction that takes it to zero completes the batch (and writes `batch.completed`)."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, nullable=False, index=True)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    item_count: Mapped[int] = mapped_column(Integer, nullable=False)
    remaining: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued, nullable=False)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("batches.id"), index=True)
    batch_index: Mapped[int | None] = mapped_column(Integer)  # position of the file in its batch
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)  # the client's, echoed back
    format_text: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)

    # The upload. `audio_key` names the object in storage; the client's filename is kept for display only.
    # A job submitted by URL has `source_url` and no audio until its worker has fetched it into storage
    # (then `source_url` keeps only scheme, host and path: a presigned URL's query is a credential).
    source_url: Mapped[str | None] = mapped_column(String(2048))
    audio_key: Mapped[str | None] = mapped_column(String(255))
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_bytes: Mapped[int | None] = mapped_column(BigInteger)
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
    # Retention (stt_common/retention.py): when the audio object and the transcript were purged.
    audio_purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    transcript_purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    queue_wait_s: Mapped[float | None] = mapped_column(Float)
    processing_s: Mapped[float | None] = mapped_column(Float)
    real_time_factor: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'processing', 'succeeded', 'failed', 'canceled')", name="status"),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_tenant_created_at", "tenant", "created_at"),
        Index("ix_jobs_tenant_status", "tenant", "status"),
    )


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` on a create request, and what it created. The same key with the
    same request returns the same object; with a different request it is refused."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)  # route, fields and file digest
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("jobs.id"))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("batches.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # waiting for its (next) attempt
    sending = "sending"  # an attempt is in flight
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # retries exhausted, or an answer that retrying cannot change
    disabled = "disabled"  # the receiver answered 410 Gone
    canceled = "canceled"  # its job or batch was deleted before it was delivered; its body is erased


class WebhookDelivery(Base):
    """One event for one URL. Its id is the event's `webhook-id`, the same on every attempt; `body` is
    the exact JSON sent (and signed) each time."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, nullable=False)  # whose secret signs it
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("jobs.id"), index=True)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("batches.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Attempts made before the latest redelivery: the retry schedule starts over from there.
    round_offset: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # last time a message was sent for it
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'failed', 'disabled', 'canceled')", name="status"
        ),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, kept for the delivery log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_deliveries.id"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64))  # timeout, connect_error, address_refused, ...
    response: Mapped[str | None] = mapped_column(Text)  # the start of the receiver's answer


class RetentionPolicy(Base):
    """A tenant's own retention, overriding STT_AUDIO_RETENTION_SECONDS / STT_TRANSCRIPT_RETENTION_SECONDS
    where set (a null column: the deployment's default)."""

    __tablename__ = "retention_policies"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    audio_seconds: Mapped[float | None] = mapped_column(Float)
    transcript_seconds: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class SigningSecret(Base):
    """Webhook signing secrets made by the service itself when none is configured."""

    __tablename__ = "signing_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class ApiKey(Base):
    """A client credential of one tenant. The key itself (`stt_<id>_<secret>`) is shown once at creation;
    only the SHA-256 of its secret part is kept (the secret is 256 random bits, so a fast hash is safe)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public part, also the lookup key
    tenant: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)  # None: STT_RATE_LIMIT_PER_MINUTE
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
