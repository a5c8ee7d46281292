"""The Celery application as both sides see it. Messages carry a job id and nothing else.

The api only publishes (by task name, so it never imports the worker); worker/celery_app.py and
worker/webhook_app.py register the task bodies on the same app.
"""

from __future__ import annotations

import logging
import uuid

from celery import Celery

from stt_common.settings import Settings

log = logging.getLogger(__name__)

TRANSCRIBE_TASK = "stt.transcribe"
TRANSCRIBE_QUEUE = "transcribe"
# Webhooks go through their own queue and workers, so a slow receiver never holds up transcription.
DELIVER_TASK = "stt.deliver_webhook"
SWEEP_TASK = "stt.sweep_webhooks"
REAP_TASK = "stt.reap_jobs"  # re-enqueues jobs that lost their message (stt_common/reaper.py)
PURGE_TASK = "stt.purge_expired"  # deletes audio and transcripts past their retention (stt_common/retention.py)
WEBHOOK_QUEUE = "webhooks"


def make_celery(settings: Settings) -> Celery:
    app = Celery("stt", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the database holds results, not a Celery backend
        task_default_queue=TRANSCRIBE_QUEUE,
        task_routes={
            TRANSCRIBE_TASK: {"queue": TRANSCRIBE_QUEUE},
            DELIVER_TASK: {"queue": WEBHOOK_QUEUE},
            SWEEP_TASK: {"queue": WEBHOOK_QUEUE},
            REAP_TASK: {"queue": WEBHOOK_QUEUE},
            PURGE_TASK: {"queue": WEBHOOK_QUEUE},
        },
        # At-least-once delivery: ack after the task body ran; a worker lost mid-task puts it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(5, settings.task_time_limit - 30),
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            # Sweep for messages of dead workers every interval (kombu's default scans every 100 s).
            "unacked_restore_interval": settings.broker_restore_interval,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        # Task events let Flower show jobs (by id: arguments are job ids only).
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def publish_transcription(app: Celery, job_id: uuid.UUID) -> None:
    """Enqueue a job; call only after the job row is committed."""
    app.send_task(
        TRANSCRIBE_TASK,
        args=[str(job_id)],
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    )


def publish_deliveries(app: Celery, delivery_ids: list[uuid.UUID], countdown: float | None = None) -> None:
    """Hand webhook deliveries to the webhooks queue; call after their rows are committed. Best effort:
    a failure is logged and loses nothing, as the periodic sweep publishes deliveries that are due and
    were not picked up."""
    try:
        for delivery_id in delivery_ids:
            app.send_task(
                DELIVER_TASK,
                args=[str(delivery_id)],
                countdown=countdown,
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            )
    except Exception as exc:
        log.warning("webhook deliveries not published now (%s); the sweep will", exc.__class__.__name__)
