"""What every benchmark script shares: the machine's name, writing its section of docs/BENCHMARKS.md,
and starting and stopping a private stack's processes."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
from pathlib import Path

BENCHMARKS_DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def replace_section(start: str, end: str, section: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the old one, or append it."""
    text = doc.read_text()
    text = text.split(start)[0] + section + text.split(end)[1] if start in text else text + "\n" + section + "\n"
    doc.write_text(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_all(procs: list[subprocess.Popen[bytes]], grace_s: float = 20) -> None:
    """SIGTERM each process group (started with start_new_session), newest first; SIGKILL laggards."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
