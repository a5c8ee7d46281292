"""The webhooks worker: `celery -A worker.webhook_app worker -Q webhooks --pool threads -B`.

It loads no model. `-B` runs the periodic tasks in the same process: the webhook sweep (due retries,
lost delivery messages) and the job reaper (jobs without a live message, `stt_common/reaper.py`). Both
only publish ids, and every delivery and every job run starts with a compare-and-set claim, so running
them in several workers at once is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from functools import cache

from redis import Redis
from redis.exceptions import LockError, RedisError

from stt_common import events, logs, metrics, reaper, retention
from stt_common.db import make_engine, make_session_factory, session_scope
from stt_common.errors import ErrorCode, is_transient
from stt_common.queue import (
    DELIVER_TASK,
    PURGE_TASK,
    REAP_TASK,
    SWEEP_TASK,
    WEBHOOK_QUEUE,
    make_celery,
    publish_deliveries,
    publish_transcription,
)
from stt_common.settings import get_settings
from stt_common.storage import Storage, open_storage
from worker.webhook_sender import SHORT_DELAY_S, SenderContext, deliver, due_deliveries

log = logging.getLogger(__name__)
settings = get_settings()
if settings.log_format == "json":
    logs.json_logs_for_celery(settings.log_level)
app = make_celery(settings)
app.conf.update(
    task_default_queue=WEBHOOK_QUEUE,
    worker_concurrency=settings.webhook_concurrency,
    # `expires`: a tick that waited out a broker outage is dropped, not run in a burst with the next ones.
    beat_schedule={
        "sweep-webhooks": {
            "task": SWEEP_TASK,
            "schedule": settings.webhook_sweep_seconds,
            "options": {"expires": settings.webhook_sweep_seconds},
        },
        "reap-jobs": {
            "task": REAP_TASK,
            "schedule": settings.reaper_interval_seconds,
            "options": {"expires": settings.reaper_interval_seconds},
        },
        "purge-expired": {
            "task": PURGE_TASK,
            "schedule": settings.retention_interval_seconds,
            "options": {"expires": settings.retention_interval_seconds},
        },
    },
    beat_schedule_filename=str(settings.storage_dir.parent / "celerybeat-schedule"),
)

_context: SenderContext | None = None


def context() -> SenderContext:
    global _context
    if _context is None:
        factory = make_session_factory(make_engine(settings.database_url))
        events.publish_after_commit(factory, lambda ids: publish_deliveries(app, ids))
        _context = SenderContext(settings, factory)
    return _context


@app.task(name=DELIVER_TASK)
def deliver_webhook(delivery_id: str) -> str:
    """Thin: one attempt by `deliver`; a soon retry goes back on the queue with a countdown."""
    ident = uuid.UUID(delivery_id)
    delay = deliver(context(), ident)
    if delay is not None and delay <= SHORT_DELAY_S:
        publish_deliveries(app, [ident], countdown=delay)
    return "retry" if delay is not None else "done"


# The periodic passes are acked on receipt, not after they ran: beat sends the next one within seconds,
# so a lost pass needs no redelivery, and a pass held unacked when Redis drops made kombu 5.7's
# connection close fail (AttributeError restoring the unacked message) and the whole worker exit.
PERIODIC = {"acks_late": False}


@app.task(name=SWEEP_TASK, **PERIODIC)
def sweep_webhooks() -> int:
    try:
        with session_scope(context().session_factory) as session:
            ids = due_deliveries(session)
    except Exception as exc:
        return _skipped("webhook sweep", exc)
    publish_deliveries(app, ids)
    if ids:
        log.info("sweep: published %d due webhook deliveries", len(ids))
    return len(ids)


@cache
def _broker() -> Redis:
    return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)


@app.task(name=REAP_TASK, **PERIODIC)
def reap_jobs() -> int:
    """One reaper pass at a time across every webhooks worker (a Redis lock); returns jobs handled."""
    lock = _broker().lock("stt:reaper", timeout=max(60.0, settings.reaper_interval_seconds * 5), blocking=False)
    try:
        if not lock.acquire():
            return 0
        try:
            found = reaper.reap(
                context().session_factory,
                _broker(),
                lambda job_id: publish_transcription(app, job_id),
                settings.reaper_grace_seconds,
                settings.job_max_attempts,
                max_hold_seconds=settings.task_retry_backoff_max + settings.reaper_grace_seconds,
            )
        finally:
            with contextlib.suppress(LockError, RedisError):
                lock.release()
    except Exception as exc:
        return _skipped("reaper", exc)
    for _ in found.failed:
        metrics.job_finished(settings.redis_url, "failed", ErrorCode.worker_lost)
    return len(found.requeued) + len(found.failed)


@app.task(name=PURGE_TASK, **PERIODIC)
def purge_expired() -> int:
    """Thin: one retention pass (safe beside another on a second host); returns what it deleted."""
    try:
        purged = retention.purge(context().session_factory, _storage(), settings)
    except Exception as exc:
        return _skipped("retention purge", exc)
    return purged.audio + purged.transcripts


@cache
def _storage() -> Storage:
    return open_storage(settings)


def _skipped(what: str, exc: Exception) -> int:
    """A periodic pass during an outage: one line, no traceback; the next tick tries again."""
    if not is_transient(exc):
        raise exc
    log.warning("%s skipped: database or broker unavailable (%s)", what, exc.__class__.__name__)
    return 0
