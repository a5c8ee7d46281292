"""Publishing what a committed request wrote to the webhook outbox."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy.orm import Session

from stt_common import events
from stt_common.queue import publish_deliveries

log = logging.getLogger(__name__)


def publish_new_deliveries(session: Session, celery: Celery) -> None:
    """Call after the commit. Best effort: the webhooks sweep publishes any delivery missed here."""
    ids = events.take_new(session)
    if not ids:
        return
    try:
        publish_deliveries(celery, ids)
    except Exception as exc:
        log.warning("webhook deliveries not published now (%s); the sweep will", exc.__class__.__name__)
