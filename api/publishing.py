"""Publishing what a committed request wrote to the webhook outbox."""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session

from stt_common import events
from stt_common.queue import publish_deliveries


def publish_new_deliveries(session: Session, celery: Celery) -> None:
    """Call after the commit (best effort: the webhooks sweep publishes any delivery missed here)."""
    ids = events.take_new(session)
    if ids:
        publish_deliveries(celery, ids)
