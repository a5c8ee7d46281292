"""What every benchmark script shares: the machine's name, writing its section of docs/BENCHMARKS.md,
and starting and stopping a private stack's processes."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS_DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


# The instructions that decide how fast INT8 products run (onnxruntime picks its kernels by them).
INT8_FLAGS = {"amx_int8": "AMX-INT8", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "avx2": "AVX2"}


def cpu_model() -> str:
    """The CPU's name and its integer dot-product instructions, e.g. "AMD EPYC 7B13 (AVX2)"."""
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    found = [label for flag, label in INT8_FLAGS.items() if flag in flags]
    if "AVX2" in found and len(found) > 1:
        found.remove("AVX2")  # implied by the others
    return f"{name} ({', '.join(found)})" if found else name


def replace_section(start: str, end: str, section: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the old one, or append it."""
    text = doc.read_text()
    text = text.split(start)[0] + section + text.split(end)[1] if start in text else text + "\n" + section + "\n"
    doc.write_text(text)


def write_results(out: Path, summary: dict[str, object], title: str, table: list[str]) -> None:
    """Print the title and the table, and write the JSON summary to `out`."""
    print(title)
    print("\n".join(table))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out}")


def cpu_seconds(groups: dict[int, str]) -> dict[str, float]:
    """CPU seconds used so far by each spawned process group (a Celery worker and its pool children)."""
    used = dict.fromkeys(groups.values(), 0.0)
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = int(fields[2])  # pgrp
        if group in groups:
            used[groups[group]] += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return {name: round(seconds, 1) for name, seconds in used.items()}


def redis_command(port: int, workdir: Path) -> list[str]:
    """A private redis-server on `port`, keeping nothing on disk (a benchmark's broker)."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]


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


def wait_for_ready(client: Any, deadline: float, logs: Path, interval_s: float = 0.2) -> None:
    """Poll the api's /ready (an httpx.Client) until it answers 200; exit by `deadline` (monotonic)."""
    import httpx

    while True:
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the stack did not become ready; logs in {logs}")
        time.sleep(interval_s)


def private_env(
    work: Path, redis_port: int, database_url: str | None = None, drop: tuple[str, ...] = ("STT_",), **settings: str
) -> dict[str, str]:
    """The environment of a private stack: this process's, less the variables starting with `drop`, with
    keys off (the stack is on this machine only), a SQLite file and local storage in `work` unless
    `database_url`, its own redis-server on `redis_port`, and `settings` (STT_* names) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "STT_AUTH_ENABLED": "false",
            "STT_DATABASE_URL": database_url or f"sqlite:///{work / 'stt.db'}",
            "STT_STORAGE_DIR": str(work / "storage"),
            "STT_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
    )
    return env


class PrivateStack:
    """A whole service of its own for a benchmark: redis-server on a free port, a migrated database,
    uvicorn, a Celery worker and the webhooks worker, logs in `work`. `env` holds the STT_* settings."""

    def __init__(self, work: Path, env: dict[str, str], repo: Path) -> None:
        self.work, self.env, self.repo = work, env, repo
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"

    def spawn(self, name: str, cmd: list[str]) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                cmd, cwd=self.repo, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        self.names[self.procs[-1].pid] = name

    def start(self, redis_port: int, api_args: tuple[str, ...] = ()) -> None:
        celery = [sys.executable, "-m", "celery"]
        self.spawn(
            "redis",
            redis_command(redis_port, self.work),
        )
        subprocess.run(
            [sys.executable, "-m", "stt_common.migrate", "--wait", "10"],
            cwd=self.repo,
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.spawn(
            "api",
            [sys.executable, "-m", "api.serve", "--port", str(self.api_port), "--log-level", "warning", *api_args],
        )
        self.spawn(
            "worker",
            [
                *celery,
                "-A",
                "worker.celery_app",
                "worker",
                "-Q",
                "transcribe",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        self.spawn(
            "webhooks",
            [
                *celery,
                "-A",
                "worker.webhook_app",
                "worker",
                "-Q",
                "webhooks",
                "--pool",
                "threads",
                "-B",
                "-s",
                str(self.work / "beat"),
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def wait_ready(self, processes: int, timeout_s: float = 180) -> str:
        """Wait until the api is ready and `processes` worker processes have the default model warm;
        returns that model's name."""
        import httpx
        from redis import Redis

        from stt_common import readiness

        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            wait_for_ready(client, deadline, self.work)
            model = str(next(m["name"] for m in client.get("/v1/models").json()["data"] if m["default"]))
        redis = Redis.from_url(self.env["STT_REDIS_URL"])
        while readiness.ready_models(redis).get(model, 0) < processes:  # every process warm
            if time.monotonic() > deadline:
                raise SystemExit(f"worker processes not warm; logs in {self.work}")
            time.sleep(0.2)
        return model

    def with_s3(self, bucket: str = "stt-bench") -> None:
        """Keep the audio in a bucket on moto's S3-compatible server (a process of this stack, on a free
        port): what `STT_STORAGE_URL=s3://...` costs, against a store on the same machine."""
        import boto3

        port = free_port()
        self.spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.env.update({**aws, "STT_STORAGE_URL": f"s3://{bucket}/audio"})
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"moto's S3 server did not start; logs in {self.work}") from None
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)

    def stop(self) -> None:
        stop_all(self.procs, 20)
