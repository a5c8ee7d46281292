"""Which worker processes hold warm models, as short-lived Redis keys.

A Celery worker answers pings as soon as its main process runs, while its pool processes may still be
loading models. So each pool process announces itself only after its models are loaded and warmed,
refreshes the announcement while it lives, and withdraws it on shutdown; /ready reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

from redis import Redis

PREFIX = "stt:worker-ready:"
TTL_SECONDS = 30


def process_key() -> str:
    return f"{PREFIX}{socket.gethostname()}:{os.getpid()}"


def announce(client: Redis, models: list[str]) -> None:
    client.set(process_key(), json.dumps({"models": models, "since": time.time()}), ex=TTL_SECONDS)


def withdraw(client: Redis) -> None:
    client.delete(process_key())


def keep_announcing(redis_url: str, models: list[str]) -> threading.Thread:
    """Announce now and keep refreshing from a daemon thread; a killed process's key expires on its own."""
    client = Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)

    def refresh() -> None:
        while True:
            with contextlib.suppress(Exception):  # broker down: /ready says so; try again next round
                announce(client, models)
            time.sleep(TTL_SECONDS / 3)

    thread = threading.Thread(target=refresh, name="stt-ready-heartbeat", daemon=True)
    thread.start()
    return thread


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
