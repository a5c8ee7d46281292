"""Queue overhead: end-to-end latency of a 5 s clip minus the engine's own time for it.

Starts a private stack (its own redis-server, a SQLite file, a Celery worker and uvicorn), sends
N sequential jobs, polls each until it succeeds, and reports p50/p95 of
    overhead = (client saw `succeeded`) - (client started the POST) - (worker's processing_s)
plus the first job after the worker started against the median job.

    python bench/queue_overhead.py [--jobs 200] [--poll-ms 2] [--out bench/results/queue_overhead.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from report import (  # bench/report.py (this folder is on sys.path)
    cpu_model,
    free_port,
    private_env,
    redis_command,
    stop_all,
    wait_for_ready,
)

REPO = Path(__file__).resolve().parent.parent


def five_second_clip() -> bytes:
    data, rate = sf.read(REPO / "samples" / "clip01.wav", dtype="float32")
    clip = np.zeros(5 * rate, dtype=np.float32)
    clip[: min(len(data), len(clip))] = data[: len(clip)]
    buf = io.BytesIO()
    sf.write(buf, clip, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=2.0, help="Client polling interval.")
    parser.add_argument("--model", default=None, help="Model to run (default: the service default).")
    parser.add_argument("--models-dir", type=Path, default=None, help="Serve models from this folder.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "queue_overhead.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-"))
    redis_port, api_port = free_port(), free_port()
    env = private_env(work, redis_port)
    if args.models_dir:
        env["STT_MODELS_DIR"] = str(args.models_dir.resolve())
    if args.model:
        env["STT_DEFAULT_MODEL"] = args.model
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=(work / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    try:
        spawn(
            "redis",
            redis_command(redis_port, work),
        )
        subprocess.run([sys.executable, "-m", "stt_common.migrate"], cwd=REPO, env=env, check=True, capture_output=True)
        spawn("api", [sys.executable, "-m", "api.serve", "--port", str(api_port), "--log-level", "warning"])
        worker_started = time.perf_counter()
        spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
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
        clip = five_second_clip()
        poll = args.poll_ms / 1000
        rows = []
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
            wait_for_ready(client, time.monotonic() + 120, work, interval_s=0.1)
            ready_s = time.perf_counter() - worker_started
            model = next(m["name"] for m in client.get("/v1/models").json()["data"] if m["default"])
            for _ in range(args.jobs):
                t0 = time.perf_counter()
                r = client.post("/v1/jobs", files={"file": ("clip.wav", clip, "audio/wav")})
                r.raise_for_status()
                accepted = time.perf_counter()
                job_id = r.json()["id"]
                while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "processing"):
                    time.sleep(poll)
                done = time.perf_counter()
                if job["status"] != "succeeded":
                    raise SystemExit(f"job failed: {job['error']}")
                engine = job["timings"]["processing_s"]
                rows.append(
                    {
                        "e2e_s": done - t0,
                        "submit_s": accepted - t0,
                        "engine_s": engine,
                        "overhead_s": done - t0 - engine,
                        "queue_wait_s": job["timings"]["queue_wait_s"],
                    }
                )
    finally:
        stop_all(procs, 15)

    overhead_ms = [r["overhead_s"] * 1000 for r in rows]
    e2e_ms = [r["e2e_s"] * 1000 for r in rows]
    engine_ms = [r["engine_s"] * 1000 for r in rows]
    submit_ms = [r["submit_s"] * 1000 for r in rows]
    median_e2e = statistics.median(e2e_ms)
    summary = {
        "model": model,
        "jobs": len(rows),
        "poll_ms": args.poll_ms,
        "worker_ready_s": round(ready_s, 2),
        "overhead_ms": {"p50": percentile(overhead_ms, 50), "p95": percentile(overhead_ms, 95)},
        "e2e_ms": {"p50": percentile(e2e_ms, 50), "p95": percentile(e2e_ms, 95)},
        "engine_ms": {"p50": percentile(engine_ms, 50), "p95": percentile(engine_ms, 95)},
        "submit_ms": {"p50": percentile(submit_ms, 50), "p95": percentile(submit_ms, 95)},
        "first_job_e2e_ms": e2e_ms[0],
        "first_over_median": e2e_ms[0] / median_e2e,
        "first_job_engine_ms": engine_ms[0],
        "first_engine_over_median": engine_ms[0] / statistics.median(engine_ms),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
    }
    print(
        f"queue overhead, model {model}, {len(rows)} sequential 5 s jobs, polling every {args.poll_ms} ms "
        f"({summary['machine']['cpu']}, {os.cpu_count()} cores)"
    )
    print(f"{'metric':28s} {'p50 ms':>10s} {'p95 ms':>10s}")
    for key in ("overhead_ms", "e2e_ms", "engine_ms", "submit_ms"):
        print(f"{key:28s} {summary[key]['p50']:10.1f} {summary[key]['p95']:10.1f}")
    print(
        f"{'first job e2e / median':28s} {summary['first_over_median']:10.2f}x "
        f"({e2e_ms[0]:.1f} ms vs {median_e2e:.1f} ms)"
    )
    print(f"{'first job engine / median':28s} {summary['first_engine_over_median']:10.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "jobs": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
