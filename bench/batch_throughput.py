"""Batch throughput: 1,000 short clips submitted as one batch through the `stt` CLI, against the engine's
raw throughput on the same cores (same model, same processes x threads, no queue, no database).

Starts a private stack (its own redis-server, a SQLite file or a PostgreSQL database, uvicorn, a Celery
worker with --concurrency processes and the webhooks worker) and a local webhook receiver, then:

- accept: the CLI's wall time to upload the files and get the batch back (`stt transcribe DIR`);
- done: from the CLI's start until the batch is `completed` (polled every 0.5 s, counts only);
- webhooks: until every job event and the `batch.completed` event reached the receiver;
- engine: the same clips decoded and transcribed by the same number of processes, each loading the
  model as a worker does, with no queue.

Target (issue 4): the service delivers at least 90% of the engine's throughput; all webhooks delivered.

    python bench/batch_throughput.py [--clips 1000] [--concurrency 2] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from report import (  # bench/report.py (this folder is on sys.path)
    PrivateStack,
    cpu_model,
    cpu_seconds,
    free_port,
    private_env,
    replace_section,
    write_results,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DOC_START, DOC_END = "<!-- batch-throughput:start -->", "<!-- batch-throughput:end -->"


def write_clips(folder: Path, count: int) -> float:
    """`count` short WAV clips made from the bundled samples (each a little different, so no two files
    are the same bytes). Returns their total length in seconds."""
    folder.mkdir(parents=True)
    samples = [sf.read(p, dtype="float32") for p in sorted((REPO / "samples").glob("clip*"))]
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(count):
        data, rate = samples[i % len(samples)]
        data = data if data.ndim == 1 else data.mean(axis=1)
        data = (data + rng.standard_normal(len(data)).astype(np.float32) * 1e-4).astype(np.float32)
        sf.write(folder / f"clip{i:04d}.wav", data, rate, subtype="PCM_16")
        total += len(data) / rate
    return total


class Receiver:
    """Counts webhook events by type (ids deduplicated, as a receiver should)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.ids[self.headers["webhook-id"]] = json.loads(body)["type"]
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.ids)


def _engine_worker(args: tuple[list[str], str, int]) -> tuple[float, int]:
    paths, model_dir, threads = args
    from worker.recognizer import Recognizer

    recognizer = Recognizer.load(Path(model_dir), threads=threads)
    recognizer.warm_up(5.0)
    started = time.perf_counter()
    for path in paths:
        recognizer.transcribe_file(Path(path), max_seconds=3600)
    return time.perf_counter() - started, len(paths)


def engine_throughput(paths: list[Path], model_dir: Path, processes: int, threads: int) -> float:
    """Clips per second with the clips split evenly over `processes` warmed engines running at once."""
    shares = [[str(p) for p in paths[i::processes]] for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_engine_worker, [(share, str(model_dir), threads) for share in shares])
    return len(paths) / max(seconds for seconds, _ in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=os.cpu_count() or 1,
        help="Worker processes (one ONNX thread each by default), and engine processes.",
    )
    parser.add_argument("--database-url", default=None, help="Default: a SQLite file in a temporary folder.")
    parser.add_argument("--engine-clips", type=int, default=300, help="Clips for the engine baseline.")
    parser.add_argument("--no-webhooks", action="store_true", help="Submit without a webhook_url.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "batch_throughput.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-batch-"))
    clips = work / "clips"
    audio_s = write_clips(clips, args.clips)
    redis_port = free_port()
    receiver = Receiver()
    threads = max(1, (os.cpu_count() or 1) // args.concurrency)
    env = private_env(
        work,
        redis_port,
        args.database_url,
        STT_WORKER_CONCURRENCY=str(args.concurrency),
        STT_WORKER_THREADS=str(threads),
        STT_WEBHOOK_ALLOWED_HOSTS='["127.0.0.1"]',
        STT_MAX_BATCH_ITEMS=str(max(1000, args.clips)),
    )
    stack = PrivateStack(work, env, REPO)
    names = stack.names
    try:
        stack.start(redis_port)
        base = stack.base_url
        model = stack.wait_ready(args.concurrency)
        with httpx.Client(base_url=base, timeout=60) as client:
            started = time.perf_counter()
            hook = [] if args.no_webhooks else ["--webhook-url", receiver.url]
            cli = subprocess.run(
                [sys.executable, "-m", "client", "transcribe", str(clips), "--url", base, *hook],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            accept_s = time.perf_counter() - started
            if cli.returncode != 0:
                raise SystemExit(f"stt transcribe failed:\n{cli.stderr[-2000:]}")
            batch_id = cli.stdout.splitlines()[0].split()[1]
            while client.get(f"/v1/batches/{batch_id}", params={"items": "false"}).json()["status"] != "completed":
                time.sleep(0.5)
            done_s = time.perf_counter() - started
            while (
                not args.no_webhooks
                and receiver.count() < args.clips + 1
                and time.perf_counter() - started < done_s + 120
            ):
                time.sleep(0.1)
            webhooks_s = time.perf_counter() - started
            results = [json.loads(line) for line in client.get(f"/v1/batches/{batch_id}/results").text.splitlines()]
            jobs = results  # each line is the job itself
            cpu = cpu_seconds(names)
    finally:
        stack.stop()
    succeeded = sum(1 for r in results if r["status"] == "succeeded")
    first_start = min(j["started_at"] for j in jobs)
    last_end = max(j["finished_at"] for j in jobs)
    busy_s = (dt.datetime.fromisoformat(last_end) - dt.datetime.fromisoformat(first_start)).total_seconds()
    engine_total = sum(j["timings"]["processing_s"] for j in jobs)
    print(
        f"first start -> last finish {busy_s:.2f} s; engine time in jobs {engine_total:.2f} s "
        f"({engine_total / args.concurrency / busy_s:.1%} of {args.concurrency} processes)"
    )
    processing = [r for r in results if r["result"]]
    print(
        f"engine baseline: {args.engine_clips} clips, {args.concurrency} processes x {threads} thread(s)...", flush=True
    )
    models_dir = Path(env.get("STT_MODELS_DIR", REPO / "models"))
    engine = engine_throughput(
        sorted(clips.glob("*.wav"))[: args.engine_clips], models_dir / model, args.concurrency, threads
    )
    service = args.clips / done_s
    events = sorted(receiver.ids.values())
    summary = {
        "model": model,
        "clips": args.clips,
        "audio_s": round(audio_s, 1),
        "succeeded": succeeded,
        "processes": args.concurrency,
        "threads_per_process": threads,
        "database": "postgresql" if args.database_url else "sqlite",
        "accept_s": round(accept_s, 2),
        "done_s": round(done_s, 2),
        "webhooks_s": round(webhooks_s, 2),
        "service_clips_per_s": round(service, 2),
        "engine_clips_per_s": round(engine, 2),
        "service_over_engine": round(service / engine, 3),
        "webhooks": {
            "job": sum(e.startswith("job.") for e in events),
            "batch.completed": events.count("batch.completed"),
        },
        "results_with_transcript": len(processing),
        "cpu_s_by_process": cpu,
        "busy_s": round(busy_s, 2),
        "engine_s_in_jobs": round(engine_total, 2),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
    }
    table = [
        "| measure | value |",
        "|---|---|",
        f"| clips (audio) | {args.clips} ({audio_s / 60:.1f} min), {succeeded} succeeded |",
        f"| accept: `stt transcribe` upload until the batch is back | {accept_s:.1f} s |",
        f"| done: until the batch is `completed` | {done_s:.1f} s |",
        f"| webhooks: {summary['webhooks']['job']} job events + {summary['webhooks']['batch.completed']} "
        f"batch.completed received | {webhooks_s:.1f} s |",
        f"| service throughput (clips / done) | {service:.2f} clips/s |",
        f"| engine throughput (no queue, same {args.concurrency} x {threads}) | {engine:.2f} clips/s |",
        f"| service / engine | {service / engine:.1%} (target at least 90%) |",
        f"| first job started → last job finished | {busy_s:.1f} s ({args.clips / busy_s:.2f} clips/s, "
        f"{args.clips / busy_s / engine:.1%} of the engine) |",
        f"| engine time inside jobs / worker process time | {engine_total / args.concurrency / busy_s:.1%} |",
        "| CPU seconds by process group | " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()) + " |",
    ]
    title = f"batch throughput, model {model}, {summary['database']}, {cpu_model()}, {os.cpu_count()} cores"
    write_results(args.out, summary, title, table)
    if not args.no_docs:
        section = "\n".join(
            [
                DOC_START,
                f"Machine: {cpu_model()}, {os.cpu_count()} cores. Date: {summary['date']}. "
                f"Command: `{summary['command']}` (database: {summary['database']}; worker "
                f"{args.concurrency} processes x {threads} thread(s); model {model}).",
                "",
                *table,
                DOC_END,
            ]
        )
        replace_section(DOC_START, DOC_END, section)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
