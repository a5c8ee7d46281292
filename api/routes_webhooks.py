"""The delivery log of a job's or a batch's webhook events, and redelivery."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from sqlalchemy import select

from api import batches
from api.auth import PrincipalDep, authenticate
from api.deps import SessionDep, SettingsDep
from api.schemas import DeliveryList, DeliveryOut, SecretOut, error_responses
from stt_common import events, jobs
from stt_common.errors import Conflict, ErrorCode
from stt_common.models import WebhookAttempt, WebhookDelivery
from stt_common.webhooks import signing_secret

router = APIRouter(tags=["webhooks"], dependencies=[Depends(authenticate)])


@router.get("/v1/webhooks/secret", response_model=SecretOut, responses=error_responses())
def webhook_secret(principal: PrincipalDep, session: SessionDep, settings: SettingsDep) -> SecretOut:
    """The `whsec_...` secret that signs your webhooks (your tenant's own), to verify them with any
    Standard Webhooks library."""
    secret = signing_secret(session, settings.webhook_secret, principal.tenant)
    session.commit()  # made on first use
    return SecretOut(secret=secret)


@router.get("/v1/jobs/{job_id}/webhooks", response_model=DeliveryList, responses=error_responses(404))
def job_webhooks(principal: PrincipalDep, session: SessionDep, job_id: str) -> DeliveryList:
    """The job's event (`job.succeeded` or `job.failed`) with every delivery attempt."""
    job = jobs.get_job(session, job_id, principal.tenant)
    return _log(session, events.deliveries(session, job_id=job.id))


@router.post(
    "/v1/jobs/{job_id}/webhooks/redeliver",
    status_code=202,
    response_model=DeliveryList,
    responses=error_responses(404, 409),
)
def redeliver_job_webhooks(principal: PrincipalDep, session: SessionDep, job_id: str) -> DeliveryList:
    """Send the job's event again (same `webhook-id`, same body, a fresh retry schedule)."""
    job = jobs.get_job(session, job_id, principal.tenant)
    return _redeliver(session, events.deliveries(session, job_id=job.id))


@router.get("/v1/batches/{batch_id}/webhooks", response_model=DeliveryList, responses=error_responses(404))
def batch_webhooks(principal: PrincipalDep, session: SessionDep, batch_id: str) -> DeliveryList:
    """The batch's `batch.completed` event with every delivery attempt (its jobs' events are on each job)."""
    batch = batches.get(session, batch_id, principal.tenant)
    return _log(session, events.deliveries(session, batch_id=batch.id))


@router.post(
    "/v1/batches/{batch_id}/webhooks/redeliver",
    status_code=202,
    response_model=DeliveryList,
    responses=error_responses(404, 409),
)
def redeliver_batch_webhooks(principal: PrincipalDep, session: SessionDep, batch_id: str) -> DeliveryList:
    """Send the `batch.completed` event again."""
    batch = batches.get(session, batch_id, principal.tenant)
    return _redeliver(session, events.deliveries(session, batch_id=batch.id))


def _redeliver(session: SessionDep, deliveries: list[WebhookDelivery]) -> DeliveryList:
    if not deliveries:
        raise Conflict(
            "there is no event to redeliver: no webhook_url was given, or the work has not finished yet",
            code=ErrorCode.no_webhook_event,
        )
    if not all(events.redeliver(session, delivery) for delivery in deliveries):
        session.rollback()
        raise Conflict(
            "a delivery of this event is still pending or in flight; see its attempts",
            code=ErrorCode.delivery_in_progress,
        )
    session.commit()
    return _log(session, deliveries)


def _log(session: SessionDep, deliveries: list[WebhookDelivery]) -> DeliveryList:
    ids: list[uuid.UUID] = [d.id for d in deliveries]
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).order_by(WebhookAttempt.number)
        for attempt in session.scalars(query):
            attempts[attempt.delivery_id].append(attempt)
    return DeliveryList(data=[DeliveryOut.of(d, attempts[d.id]) for d in deliveries])
