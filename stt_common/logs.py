"""Log setup shared by the api and the workers. `STT_LOG_FORMAT=json` writes one JSON object per line
(time, level, logger, process, message, and `job_id` while a job runs), for log shippers; the default
`text` leaves Celery's and uvicorn's own formats alone. Logs name jobs by id and never hold audio or
transcript text.
"""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_job", default=None)


class JobIdFilter(logging.Filter):
    """Adds the id of the job this thread is running (if any) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job.get()
        return True


def configure_json(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s %(job_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "processName": "process"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def json_logs_for_celery(level: str) -> None:
    """Call at import of a Celery app module: Celery then leaves logging to `configure_json`."""
    from celery import signals

    signals.setup_logging.connect(lambda **_: configure_json(level), weak=False)
