"""The webhook outbox: events are written in the same transaction as the state change they report, so
a job never ends without its event, and an event never exists for a change that was rolled back.

Nobody publishes by hand: each deployable calls `publish_after_commit` on its session factory once, and
every session it makes hands the deliveries it wrote to the webhooks queue when its transaction commits,
and forgets them when it rolls back. A periodic sweep publishes any whose message was lost.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from stt_common.db import utcnow
from stt_common.models import Batch, DeliveryStatus, Job, JobStatus, WebhookDelivery
from stt_common.resources import BatchOut, JobSummaryOut

JOB_EVENTS = {JobStatus.succeeded: "job.succeeded", JobStatus.failed: "job.failed"}
BATCH_COMPLETED = "batch.completed"
log = logging.getLogger(__name__)

_NEW = "stt_new_deliveries"  # key in Session.info
ERASED = ""  # the body of a deleted job's or batch's delivery


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_data(job: Job) -> dict[str, Any]:
    """The job as GET /v1/jobs lists it (the result's text, not its words: GET the job for those)."""
    return JobSummaryOut.of(job).model_dump(mode="json")


def batch_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    rows = session.execute(select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status))
    for status, count in rows:
        counts[status] = count
    return counts


def batch_data(session: Session, batch: Batch) -> dict[str, Any]:
    """The batch as GET /v1/batches/{id}?items=false answers."""
    return BatchOut.of(batch, batch_counts(session, batch.id), None).model_dump(mode="json", exclude={"items"})


def _add(
    session: Session,
    event_type: str,
    url: str,
    data: dict[str, Any],
    *,
    tenant: str,
    job_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> None:
    now = utcnow()
    body = json.dumps(
        {"type": event_type, "timestamp": _iso(now), "data": data}, ensure_ascii=False, separators=(",", ":")
    )
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        event_type=event_type,
        tenant=tenant,
        job_id=job_id,
        batch_id=batch_id,
        url=url,
        body=body,
        status=DeliveryStatus.pending,
        attempts=0,
        round_offset=0,
        created_at=now,
        next_attempt_at=now,
        enqueued_at=now,
    )
    session.add(delivery)
    session.info.setdefault(_NEW, []).append(delivery.id)


def job_finished(session: Session, job_id: uuid.UUID) -> None:
    """Call in the transaction that moved the job to a terminal state (exactly once per job)."""
    job = session.get(Job, job_id)  # usually from the identity map: its webhook and batch never change
    if job is None:
        return
    if job.webhook_url and job.deleted_at is None:
        session.flush()
        session.refresh(job)  # the event carries the state the transition just wrote
        event = JOB_EVENTS.get(JobStatus(job.status))
        if event:
            _add(
                session, event, job.webhook_url, job_data(job), tenant=job.tenant, job_id=job.id, batch_id=job.batch_id
            )
    if job.batch_id is not None:
        _count_down(session, job.batch_id)


def _count_down(session: Session, batch_id: uuid.UUID) -> None:
    """One fewer job to wait for. The row update serialises concurrent finishers, so exactly one sees
    zero and completes the batch."""
    remaining = session.scalar(
        update(Batch)
        .where(Batch.id == batch_id, Batch.remaining > 0)
        .values(remaining=Batch.remaining - 1)
        .returning(Batch.remaining)
    )
    if remaining == 0:
        batch_completed(session, batch_id)


def batch_completed(session: Session, batch_id: uuid.UUID) -> None:
    session.execute(update(Batch).where(Batch.id == batch_id).values(completed_at=utcnow()))
    batch = session.get(Batch, batch_id, populate_existing=True)
    if batch is not None and batch.webhook_url and batch.deleted_at is None:
        _add(
            session,
            BATCH_COMPLETED,
            batch.webhook_url,
            batch_data(session, batch),
            tenant=batch.tenant,
            batch_id=batch.id,
        )


def erase(session: Session, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None) -> None:
    """For a deleted job or batch: cancel its events not yet delivered (an attempt already in flight
    finishes, but none follows) and erase every body, which may hold the transcript. Only the
    delivery log's metadata stays."""
    owner = WebhookDelivery.job_id == job_id if job_id is not None else WebhookDelivery.batch_id == batch_id
    now = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(owner, WebhookDelivery.status.in_([DeliveryStatus.pending, DeliveryStatus.sending]))
        .values(status=DeliveryStatus.canceled, finished_at=now, next_attempt_at=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(WebhookDelivery).where(owner).values(body=ERASED).execution_options(synchronize_session=False)
    )


def take_new(session: Session) -> list[uuid.UUID]:
    """Ids of deliveries this session wrote and nobody has published yet."""
    return list(session.info.pop(_NEW, []))


def publish_after_commit(factory: sessionmaker[Session], publish: Callable[[list[uuid.UUID]], None]) -> None:
    """Every session `factory` makes hands the deliveries it wrote to `publish` once its transaction has
    committed, and drops them if it rolls back (as Polar's job-queue manager does with its jobs).
    Best effort: a publish that fails is logged, and the sweep sends the delivery later."""

    @event.listens_for(factory, "after_commit")
    def _committed(session: Session) -> None:
        ids = take_new(session)
        if not ids:
            return
        try:
            publish(ids)
        except Exception as exc:
            log.warning(
                "publishing %d webhook deliveries failed (the sweep will): %s", len(ids), exc.__class__.__name__
            )

    @event.listens_for(factory, "after_transaction_end")
    def _ended(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the outermost transaction ended without a commit: none were written
            session.info.pop(_NEW, None)


def deliveries(
    session: Session, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
    if job_id is not None:
        query = query.where(WebhookDelivery.job_id == job_id, WebhookDelivery.event_type != BATCH_COMPLETED)
    if batch_id is not None:
        query = query.where(WebhookDelivery.batch_id == batch_id, WebhookDelivery.event_type == BATCH_COMPLETED)
    return list(session.scalars(query))


def redeliver(session: Session, delivery: WebhookDelivery) -> bool:
    """Send a finished delivery again, same id and body. False while an attempt is pending or in flight."""
    if delivery.status in (DeliveryStatus.pending, DeliveryStatus.sending):
        return False
    now = utcnow()
    delivery.status = DeliveryStatus.pending
    delivery.round_offset = delivery.attempts
    delivery.next_attempt_at = now
    delivery.enqueued_at = now
    delivery.finished_at = None
    session.flush()
    session.info.setdefault(_NEW, []).append(delivery.id)
    return True
