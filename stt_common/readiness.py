"""Which worker processes hold warm models, as short-lived Redis keys.

A Celery worker answers pings as soon as its main process runs, while its pool processes may still be
loading models, and its main process starts consuming only after the pool is up. So the main process
marks itself consuming (Celery's `worker_ready`), each pool process announces itself once its models
are loaded and warmed *and* its main process consumes, refreshes the announcement while it lives, and
withdraws it on shutdown; /ready reads them. A client that waits for /ready then submits finds a worker
taking messages, not one still starting up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable

from redis import Redis

PREFIX = "stt:worker-ready:"
CONSUMING = "stt:worker-consuming:"
TTL_SECONDS = 30


def process_key(pid: int | None = None, prefix: str = PREFIX) -> str:
    return f"{prefix}{socket.gethostname()}:{pid or os.getpid()}"


def announce(client: Redis, models: list[str]) -> None:
    client.set(process_key(), json.dumps({"models": models, "since": time.time()}), ex=TTL_SECONDS)


def withdraw(client: Redis) -> None:
    client.delete(process_key(), process_key(prefix=CONSUMING))


def _keep_refreshing(name: str, refresh: Callable[[], object], wait_for: Callable[[], bool] | None = None) -> None:
    """A daemon thread: once `wait_for()` holds, call `refresh` now and every third of the TTL; a killed
    process's keys expire on their own. Redis errors are retried (while the broker is down, /ready says so)."""

    def run() -> None:
        while wait_for is not None and not _quietly(wait_for):
            time.sleep(0.05)
        while True:
            _quietly(refresh)
            time.sleep(TTL_SECONDS / 3)

    threading.Thread(target=run, name=name, daemon=True).start()


def _quietly(call: Callable[[], object]) -> object:
    with contextlib.suppress(Exception):
        return call()
    return None


def keep_announcing(redis_url: str, models: list[str], consumer_pid: int) -> None:
    """Announce this process's warm models once the worker's main process (`consumer_pid`, this process
    itself in a solo or thread pool) consumes, and keep the announcement fresh."""
    client = Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
    gate = process_key(consumer_pid, CONSUMING)
    _keep_refreshing("stt-ready-heartbeat", lambda: announce(client, models), lambda: bool(client.exists(gate)))


def keep_consuming(redis_url: str) -> None:
    """Call from Celery's `worker_ready`: this main process takes messages from now on."""
    client = Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)
    key = process_key(prefix=CONSUMING)
    _keep_refreshing("stt-consuming-heartbeat", lambda: client.set(key, "1", ex=TTL_SECONDS))


def ready_models(client: Redis) -> dict[str, int]:
    """How many warm worker processes serve each model."""
    counts: dict[str, int] = {}
    for key in client.scan_iter(match=f"{PREFIX}*", count=500):
        raw = client.get(key)
        if raw is None:
            continue
        for model in json.loads(raw).get("models", []):
            counts[model] = counts.get(model, 0) + 1
    return counts
