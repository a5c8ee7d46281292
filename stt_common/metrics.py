"""Prometheus metrics for GET /metrics.

Events (a job finished, a webhook attempt) happen in many worker processes on many hosts, so their
counters and histograms are kept in Redis hashes, bumped by whoever saw the event and read by the api
at scrape time: one scrape target sees the whole fleet, with no multiprocess directory or pushgateway.
They restart from zero if Redis loses its data; Prometheus treats that as a counter reset. Gauges
(queue depth, jobs by state) are read fresh at each scrape. Recording is best effort: a metric never
fails a job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from functools import cache

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from stt_common.jobs import ACTIVE
from stt_common.models import Job
from stt_common.queue import TRANSCRIBE_QUEUE, WEBHOOK_QUEUE

log = logging.getLogger(__name__)

PREFIX = "stt:metrics:"
FINISHED = "jobs_finished"  # fields "status|code"
WEBHOOK_ATTEMPTS = "webhook_attempts"  # fields: outcome
RETENTION_PURGED = "retention_purged"  # fields: audio, transcript
# Histograms: one hash each; fields are bucket upper bounds ("+Inf" last), "sum" and nothing else.
HISTOGRAMS: dict[str, tuple[str, Sequence[float]]] = {
    "job_processing_seconds": (
        "Time from claim to stored result of succeeded jobs, in seconds.",
        (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    ),
    "job_real_time_factor": (
        "Processing time over audio duration of succeeded jobs.",
        (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
    ),
    "job_queue_wait_seconds": (
        "Time from submission to claim of succeeded jobs, in seconds.",
        (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
    ),
}


@cache
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


def _bucket(value: float, bounds: Sequence[float]) -> str:
    return next((repr(float(b)) for b in bounds if value <= b), "+Inf")


def job_finished(
    redis_url: str,
    status: str,
    code: str | None = None,
    *,
    processing_s: float | None = None,
    rtf: float | None = None,
    queue_wait_s: float | None = None,
) -> None:
    """Count a job that reached a terminal state (after its commit)."""
    try:
        pipe = _redis(redis_url).pipeline(transaction=False)
        pipe.hincrby(PREFIX + FINISHED, f"{status}|{code or ''}", 1)
        for name, value in (
            ("job_processing_seconds", processing_s),
            ("job_real_time_factor", rtf),
            ("job_queue_wait_seconds", queue_wait_s),
        ):
            if value is not None:
                pipe.hincrby(PREFIX + name, _bucket(value, HISTOGRAMS[name][1]), 1)
                pipe.hincrbyfloat(PREFIX + name, "sum", value)
        pipe.execute()
    except RedisError as exc:
        log.debug("metrics not recorded: %s", exc)


def retention_purged(redis_url: str, what: str, count: int) -> None:
    """Count audio objects or transcripts (`what`) deleted by the retention purge."""
    if not count:
        return
    try:
        _redis(redis_url).hincrby(PREFIX + RETENTION_PURGED, what, count)
    except RedisError as exc:
        log.debug("metrics not recorded: %s", exc)


def webhook_attempt(redis_url: str, outcome: str) -> None:
    """Count one webhook attempt by outcome: `delivered`, `http_4xx`, `http_5xx`, `timeout`, ..."""
    try:
        _redis(redis_url).hincrby(PREFIX + WEBHOOK_ATTEMPTS, outcome, 1)
    except RedisError as exc:
        log.debug("metrics not recorded: %s", exc)


def _hash(redis: Redis, name: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = redis.hgetall(PREFIX + name)  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


class ServiceCollector(Collector):
    """Reads the fleet's metrics from Redis and the database at each scrape."""

    def __init__(self, redis_url: str, session_factory: sessionmaker[Session]) -> None:
        self.redis_url, self.session_factory = redis_url, session_factory

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        jobs = GaugeMetricFamily(
            "stt_jobs", "Jobs queued or processing (finished ones: stt_jobs_finished_total).", labels=["status"]
        )
        with self.session_factory() as session:  # active jobs only: a range of the status index, not every job
            counts = dict(
                session.execute(
                    select(Job.status, func.count())
                    .where(Job.status.in_(ACTIVE), Job.deleted_at.is_(None))
                    .group_by(Job.status)
                ).all()
            )
        for active in ACTIVE:
            jobs.add_metric([active.value], counts.get(active, 0))
        yield jobs

        redis = _redis(self.redis_url)
        depth = GaugeMetricFamily("stt_queue_depth", "Messages waiting in each broker queue.", labels=["queue"])
        for queue in (TRANSCRIBE_QUEUE, WEBHOOK_QUEUE):
            depth.add_metric([queue], redis.llen(queue))
        yield depth

        finished = CounterMetricFamily(
            "stt_jobs_finished",
            "Jobs that reached a terminal state, by status and error code.",
            labels=["status", "code"],
        )
        for field, value in sorted(_hash(redis, FINISHED).items()):
            status, _, code = field.partition("|")
            finished.add_metric([status, code], int(value))
        yield finished

        attempts = CounterMetricFamily("stt_webhook_attempts", "Webhook HTTP attempts by outcome.", labels=["outcome"])
        for outcome, value in sorted(_hash(redis, WEBHOOK_ATTEMPTS).items()):
            attempts.add_metric([outcome], int(value))
        yield attempts

        purged = CounterMetricFamily(
            "stt_retention_purged", "Audio objects and transcripts deleted by the retention purge.", labels=["what"]
        )
        for what, value in sorted(_hash(redis, RETENTION_PURGED).items()):
            purged.add_metric([what], int(value))
        yield purged

        for name, (doc, bounds) in HISTOGRAMS.items():
            raw = _hash(redis, name)
            running, buckets = 0, []
            for bound in [repr(float(b)) for b in bounds] + ["+Inf"]:
                running += int(raw.get(bound, 0))
                buckets.append((bound, running))
            histogram = HistogramMetricFamily(f"stt_{name}", doc)
            histogram.add_metric([], buckets, float(raw.get("sum", 0.0)))
            yield histogram
