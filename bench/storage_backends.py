"""What keeping the audio in an S3-compatible bucket costs against a local directory, measured in one run.

For each backend in turn (local, s3, local, s3, ... so a noisy stretch of the machine does not land on
one backend only) a private stack starts (redis-server, SQLite, the api, one Celery worker, the webhooks
worker; for s3, moto's S3 server on this machine), then:

- submit: `--jobs` sequential POST /v1/jobs of a 5 s clip, each timed from request to 202;
- batch: `--clips` clips in one POST /v1/batches, timed until the batch is `completed` (throughput);
- CPU: seconds used by the api's and the worker's processes over both phases, per job.

Targets (issue 17): S3 costs at most 5% of batch throughput and at most 10 ms p50 at submit.

    python bench/storage_backends.py [--jobs 100] [--clips 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from queue_overhead import five_second_clip  # the same 5 s clip as the queue-overhead benchmark
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
START, END = "<!-- storage-backends:start -->", "<!-- storage-backends:end -->"


def measure(backend: str, jobs: int, clips: int, clip: bytes) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"stt-bench-{backend}-"))
    redis_port = free_port()
    env = private_env(work, redis_port, drop=("STT_", "AWS_"), STT_MAX_BATCH_ITEMS=str(max(1000, clips)))
    stack = PrivateStack(work, env, REPO)
    try:
        if backend == "s3":
            stack.with_s3()
        stack.start(redis_port)
        stack.wait_ready(1)
        groups = {pid: name for pid, name in stack.names.items() if name in ("api", "worker", "s3")}
        before = cpu_seconds(groups)
        submit_ms = []
        with httpx.Client(base_url=stack.base_url, timeout=60) as client:
            for _ in range(jobs):
                started = time.perf_counter()
                client.post("/v1/jobs", files={"file": ("clip.wav", clip, "audio/wav")}).raise_for_status()
                submit_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            answer = client.post(
                "/v1/batches", files=[("files", (f"{i}.wav", clip, "audio/wav")) for i in range(clips)]
            )
            answer.raise_for_status()
            batch_id = answer.json()["id"]
            while (batch := client.get(f"/v1/batches/{batch_id}", params={"items": "false"}).json())[
                "status"
            ] != "completed":
                time.sleep(0.2)
            batch_s = time.perf_counter() - started
            while (
                client.get("/v1/jobs", params={"status": "queued", "limit": 1}).json()["data"]
                or client.get("/v1/jobs", params={"status": "processing", "limit": 1}).json()["data"]
            ):
                time.sleep(0.2)  # the sequential jobs, queued before the batch, are done by now; make sure
        after = cpu_seconds(groups)
    finally:
        stack.stop()
    if batch["counts"]["succeeded"] != clips:
        raise SystemExit(f"{backend}: {batch['counts']} (logs in {work})")
    total = jobs + clips
    return {
        "backend": backend,
        "submit_p50_ms": round(statistics.median(submit_ms), 2),
        "submit_p95_ms": round(float(np.percentile(submit_ms, 95)), 2),
        "batch_clips_per_s": round(clips / batch_s, 2),
        "api_cpu_ms_per_job": round((after["api"] - before["api"]) * 1000 / total, 1),
        "worker_cpu_ms_per_job": round((after["worker"] - before["worker"]) * 1000 / total, 1),
        # moto's server runs on the same cores as the service: what it takes is taken from the workers
        "store_cpu_ms_per_job": round((after.get("s3", 0.0) - before.get("s3", 0.0)) * 1000 / total, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="Sequential submissions per round.")
    parser.add_argument("--clips", type=int, default=200, help="Clips in each round's batch.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds; each runs local, then s3.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "storage_backends.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()
    clip = five_second_clip()
    runs = []
    for round_ in range(args.rounds):
        for backend in ("local", "s3"):
            print(f"round {round_ + 1}: {backend} ...", flush=True)
            runs.append(measure(backend, args.jobs, args.clips, clip))
            print(runs[-1], flush=True)

    def mean(backend: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs if r["backend"] == backend)

    keys = (
        "submit_p50_ms",
        "submit_p95_ms",
        "batch_clips_per_s",
        "api_cpu_ms_per_job",
        "worker_cpu_ms_per_job",
        "store_cpu_ms_per_job",
    )
    means = {b: {k: round(mean(b, k), 2) for k in keys} for b in ("local", "s3")}
    throughput_cost = 1 - means["s3"]["batch_clips_per_s"] / means["local"]["batch_clips_per_s"]
    submit_cost_ms = means["s3"]["submit_p50_ms"] - means["local"]["submit_p50_ms"]
    summary = {
        "runs": runs,
        "means": means,
        "s3_throughput_cost": round(throughput_cost, 4),
        "s3_submit_p50_cost_ms": round(submit_cost_ms, 2),
        "jobs": args.jobs,
        "clips": args.clips,
        "rounds": args.rounds,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
    }
    table = [
        "| store | submit p50 / p95 (ms) | batch (clips/s) | api CPU "
        "per job (ms) | worker CPU per job (ms) | S3 server CPU per job (ms) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {b} | {m['submit_p50_ms']:.1f} / {m['submit_p95_ms']:.1f} | {m['batch_clips_per_s']:.2f} | "
            f"{m['api_cpu_ms_per_job']:.1f} | {m['worker_cpu_ms_per_job']:.1f} | {m['store_cpu_ms_per_job']:.1f} |"
            for b, m in means.items()
        ),
        "",
        f"S3 against local: {throughput_cost:+.1%} of batch throughput lost (target at most 5%), "
        f"{submit_cost_ms:+.1f} ms at submit p50 (target at most 10 ms). Means of {args.rounds} rounds, "
        "each round local then s3.",
    ]
    title = f"storage backends: {args.jobs} submissions and a batch of {args.clips} clips per run"
    write_results(args.out, summary, title, table)
    if not args.no_docs:
        machine = summary["machine"]
        head = (
            f"Machine: {machine['cpu']}, {machine['cores']} cores. Date: {summary['date']}. "
            f"Command: `{summary['command']}`."
        )
        replace_section(START, END, "\n".join([START, head, "", *table, END]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
