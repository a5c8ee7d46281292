"""Response bodies of the HTTP API (the OpenAPI schema at /docs is generated from these); jobs and batches,
which webhooks and batch results carry too, are defined in stt_common/resources.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from stt_common.models import WebhookAttempt, WebhookDelivery
from stt_common.resources import ErrorDetail, JobSummaryOut


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a /v1 route: the statuses it can answer with an error body. Every /v1
    route can also answer 401 (key), 429 (rate limit) and 503 (database or broker down)."""
    return {status: {"model": ErrorBody} for status in sorted({*statuses, 401, 429, 503})}


class JobList(BaseModel):
    object: str = "list"
    data: list[JobSummaryOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next (older) page.")


class ModelOut(BaseModel):
    """OpenAI's model object (`id`, `object`, `created`, `owned_by`), and what this service knows more."""

    id: str = Field(description="The name to pass as `model`.")
    object: str = "model"
    created: int = Field(description="When the model folder was written, in Unix seconds.")
    owned_by: str = "turkish-stt"
    name: str = Field(description="The same as `id`.")
    language: str
    sample_rate: int
    variants: list[str]
    default: bool
    description: str
    metrics: dict[str, Any]


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelOut]


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


class AttemptOut(BaseModel):
    number: int
    started_at: dt.datetime
    latency_ms: float | None
    status_code: int | None = Field(None, description="The receiver's HTTP status, if it answered.")
    error: str | None = Field(
        None, description="timeout, connection_error, dns_error, address_refused, redirect_refused, gone or http_error."
    )
    response: str | None = Field(None, description="The start (1 KB) of the receiver's answer.")

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(
            number=attempt.number,
            started_at=attempt.started_at,
            latency_ms=attempt.latency_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            response=attempt.response,
        )


class DeliveryOut(BaseModel):
    id: str = Field(description="The event's `webhook-id`, the same on every attempt.")
    event_type: str
    url: str
    status: str = Field(
        description="pending, sending, delivered, failed, disabled (the receiver said 410) or "
        "canceled (its job or batch was deleted first)."
    )
    attempts: list[AttemptOut]
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.webhook_id,
            event_type=delivery.event_type,
            url=delivery.url,
            status=delivery.status,
            attempts=[AttemptOut.of(a) for a in attempts],
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            finished_at=delivery.finished_at,
        )


class SecretOut(BaseModel):
    secret: str = Field(description="The `whsec_...` signing secret of your tenant's webhooks.")


class DeliveryList(BaseModel):
    object: str = "list"
    data: list[DeliveryOut]
