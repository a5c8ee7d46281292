"""The worker's Celery app: `celery -A worker.celery_app worker`.

Each worker process loads and warms every model before it takes its first job, so the first job is
as fast as the hundredth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from typing import Any

from celery import signals
from redis import Redis

from stt_common import logs, readiness
from stt_common.errors import JobNotFound, is_transient
from stt_common.jobs import parse_job_id
from stt_common.queue import TRANSCRIBE_QUEUE, TRANSCRIBE_TASK, make_celery, publish_deliveries
from stt_common.settings import get_settings
from worker.context import build_context
from worker.runner import WorkerContext, fail_exhausted, run_job

log = logging.getLogger(__name__)
settings = get_settings()
if settings.log_format == "json":
    logs.json_logs_for_celery(settings.log_level)
app = make_celery(settings)
app.conf.update(
    worker_concurrency=settings.worker_concurrency,
    task_default_queue=TRANSCRIBE_QUEUE,
    worker_proc_alive_timeout=300,  # model loading and warm-up happen in the child's init
)

_context: WorkerContext | None = None


def context() -> WorkerContext:
    global _context
    if _context is None:
        _context = build_context(settings, lambda ids: publish_deliveries(app, ids))
    return _context


def _preload(consumer_pid: int) -> None:
    """Load and warm the models now, then announce them once the process that consumes for this one
    takes messages."""
    readiness.keep_announcing(settings.redis_url, sorted(context().recognizers), consumer_pid=consumer_pid)


@signals.worker_process_init.connect
def _preload_in_child(**_: Any) -> None:
    _preload(os.getppid())  # prefork: each child loads its own sessions after the fork; its parent consumes


@signals.worker_ready.connect
def _consuming(**_: Any) -> None:
    """The main process takes messages from now on: its pool processes may announce themselves."""
    readiness.keep_consuming(settings.redis_url)


@signals.worker_init.connect
def _preload_in_main(sender: Any = None, **_: Any) -> None:
    pool = str(getattr(sender, "pool_cls", "")).lower()
    if "prefork" not in pool and "processes" not in pool:
        _preload(os.getpid())  # solo and thread pools run tasks in this process, which also consumes


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _withdraw(**_: Any) -> None:
    if _context is not None:
        with contextlib.suppress(Exception):
            readiness.withdraw(Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1))


def retry_delay(retries: int, maximum: float) -> float:
    """2, 4, 8 … s capped at `maximum`, each between half and all of it: the default five retries wait
    31–62 s in all, long enough to ride out a database failover before the job is failed."""
    return min(maximum, 2.0 ** (retries + 1)) * random.uniform(0.5, 1.0)


@app.task(name=TRANSCRIBE_TASK, bind=True, max_retries=settings.task_max_retries)
def transcribe(self: Any, job_id: str) -> str:
    """Thin: everything happens in `run_job`; this maps transient failures to bounded retries."""
    try:
        ident = parse_job_id(job_id)
    except JobNotFound:
        log.error("dropping a message with a malformed job id %r", job_id[:64])
        return "skipped"
    try:
        return run_job(context(), ident).value
    except Exception as exc:
        if not is_transient(exc):
            raise
        if self.request.retries >= self.max_retries:
            fail_exhausted(context(), ident, f"gave up after {self.request.retries + 1} attempts: {exc}")
            return "failed"
        countdown = retry_delay(self.request.retries, settings.task_retry_backoff_max)
        log.warning(
            "job %s: %s; retry %d in %.1f s", job_id, exc.__class__.__name__, self.request.retries + 1, countdown
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
