"""The webhooks worker: `celery -A worker.webhook_app worker -Q webhooks --pool threads -B`.

It loads no model. `-B` runs the periodic sweep in the same process; the sweep only publishes ids and
every send is a compare-and-set claim, so running it in several workers at once is harmless.
"""

from __future__ import annotations

import logging
import uuid

from stt_common.db import make_engine, make_session_factory, session_scope
from stt_common.queue import DELIVER_TASK, SWEEP_TASK, WEBHOOK_QUEUE, make_celery, publish_deliveries
from stt_common.settings import get_settings
from worker.webhook_sender import SHORT_DELAY_S, SenderContext, deliver, due_deliveries, make_client

log = logging.getLogger(__name__)
settings = get_settings()
app = make_celery(settings)
app.conf.update(
    task_default_queue=WEBHOOK_QUEUE,
    worker_concurrency=settings.webhook_concurrency,
    beat_schedule={"sweep-webhooks": {"task": SWEEP_TASK, "schedule": settings.webhook_sweep_seconds}},
    beat_schedule_filename=str(settings.storage_dir.parent / "celerybeat-schedule"),
)

_context: SenderContext | None = None


def context() -> SenderContext:
    global _context
    if _context is None:
        factory = make_session_factory(make_engine(settings.database_url))
        _context = SenderContext(settings, factory, make_client())
    return _context


@app.task(name=DELIVER_TASK)
def deliver_webhook(delivery_id: str) -> str:
    """Thin: one attempt by `deliver`; a soon retry goes back on the queue with a countdown."""
    ident = uuid.UUID(delivery_id)
    delay = deliver(context(), ident)
    if delay is not None and delay <= SHORT_DELAY_S:
        publish_deliveries(app, [ident], countdown=delay)
    return "retry" if delay is not None else "done"


@app.task(name=SWEEP_TASK)
def sweep_webhooks() -> int:
    with session_scope(context().session_factory) as session:
        ids = due_deliveries(session)
    publish_deliveries(app, ids)
    if ids:
        log.info("sweep: published %d due webhook deliveries", len(ids))
    return len(ids)
