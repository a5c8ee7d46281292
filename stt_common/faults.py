"""Fault points for the reliability tests, set by the environment of the process under test:

    STT_FAULT_POINTS="api.after_commit=exit,worker.before_complete=sleep:20"

`exit` ends the process at once (as a crash or SIGKILL would: no cleanup, no reply); `sleep:S` holds the
process there for S seconds (a slow job, a window to kill it in). Unset, as in production, `hit` is one
dictionary lookup. docs/RELIABILITY.md lists the points.
"""

from __future__ import annotations

import os
import time

POINTS = ("api.after_commit", "worker.before_complete")


def _parse(raw: str) -> dict[str, str]:
    points: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, action = item.partition("=")
        if name not in POINTS or not (action == "exit" or action.startswith("sleep:")):
            raise ValueError(
                f"STT_FAULT_POINTS: unknown fault {item!r}; points: {', '.join(POINTS)}; actions: exit, sleep:SECONDS"
            )
        points[name] = action
    return points


_ACTIVE = _parse(os.environ.get("STT_FAULT_POINTS", ""))


def hit(point: str) -> None:
    action = _ACTIVE.get(point)
    if action is None:
        return
    if action == "exit":
        os._exit(70)  # like a crash: no atexit handlers, no response, no rollback
    time.sleep(float(action.removeprefix("sleep:")))
