"""Load: bench/locustfile.py (the seed's Locust test, made asynchronous) against a private stack at 5 and
50 users, 60 s each, run as the seed ran it (`locust --headless -u N -r R -t 60s`).

For each run: requests and failures, submit (POST /v1/jobs until its 202) p50/p95/max, end-to-end (submit
until the job has succeeded, polled as the Python client polls) p50/p95, /health p50. The stack is warm before the
first request (models loaded and warmed at worker start, api connections opened at its start), so there
should be no cold-start spike: the seed's p95 was 7.5 s against a 71 ms median.

Targets (issue 5): 0% failures at 50 users; submit p95 at most 3x submit p50.

    python bench/load.py [--users 5 50] [--seconds 60] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import (  # bench/report.py (this folder is on sys.path)
    PrivateStack,
    cpu_model,
    free_port,
    private_env,
    replace_section,
    write_results,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOC_START, DOC_END = "<!-- load:start -->", "<!-- load:end -->"


def stats(prefix: Path) -> dict[str, dict[str, float]]:
    """Locust's `--csv` totals by request name."""
    rows = {}
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50_ms": float(row["50%"] or 0),
                "p95_ms": float(row["95%"] or 0),
                "max_ms": float(row["Max Response Time"]),
            }
    return rows


def run_locust(base_url: str, users: int, seconds: int, prefix: Path) -> dict[str, dict[str, float]]:
    rate = max(2, users // 5)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO / "bench" / "locustfile.py"),
            "--host",
            base_url,
            "--headless",
            "-u",
            str(users),
            "-r",
            str(rate),
            "-t",
            f"{seconds}s",
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    )
    if not (prefix.parent / f"{prefix.name}_stats.csv").is_file():  # locust exits 1 when requests failed
        hint = " (pip install -e '.[load]', or make load)" if "No module named locust" in done.stderr else ""
        raise SystemExit(f"load: locust wrote no statistics{hint}:\n{done.stderr[-2000:]}")
    return stats(prefix)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1, help="Worker processes.")
    parser.add_argument("--database-url", default=None, help="Default: a SQLite file in a temporary folder.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-load-"))
    redis_port = free_port()
    env = private_env(
        work,
        redis_port,
        args.database_url,
        STT_WORKER_CONCURRENCY=str(args.concurrency),
        STT_WORKER_THREADS=str(max(1, (os.cpu_count() or 1) // args.concurrency)),
    )
    stack = PrivateStack(work, env, REPO)
    runs = []
    try:
        stack.start(redis_port)
        model = stack.wait_ready(args.concurrency)
        for users in args.users:
            print(f"locust: {users} users for {args.seconds} s ...", flush=True)
            found = run_locust(stack.base_url, users, args.seconds, work / f"u{users}")
            names = ("submit", "poll", "end-to-end", "health", "Aggregated")
            runs.append({"users": users, "seconds": args.seconds, **{k: found.get(k, {}) for k in names}})
    finally:
        stack.stop()

    table = [
        "| users | requests | failures | submit p50 / p95 / max (ms) | submit p95 / p50 "
        "| end-to-end p50 / p95 (ms) | jobs done | /health p50 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        total, submit, e2e, health = run["Aggregated"], run["submit"], run["end-to-end"], run["health"]
        ratio = submit["p95_ms"] / submit["p50_ms"] if submit.get("p50_ms") else float("nan")
        run["submit_p95_over_p50"] = round(ratio, 2)
        failed = total["failures"] / max(1, total["requests"])
        table.append(
            f"| {run['users']} | {total['requests']} | {total['failures']} ({failed:.1%}) "
            f"| {submit['p50_ms']:.0f} / {submit['p95_ms']:.0f} / {submit['max_ms']:.0f} | {ratio:.2f} "
            f"| {e2e['p50_ms']:.0f} / {e2e['p95_ms']:.0f} | {e2e['requests']} | {health['p50_ms']:.0f} |"
        )
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    database = "postgresql" if args.database_url else "sqlite"
    summary = {
        "model": model,
        "processes": args.concurrency,
        "database": database,
        "runs": runs,
        "machine": machine,
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
    }
    write_results(
        args.out, summary, f"load, model {model}, {database}, {machine['cpu']}, {machine['cores']} cores", table
    )
    if not args.no_docs:
        section = "\n".join(
            [
                DOC_START,
                "## Load (Locust)",
                "",
                f"`{summary['command']}` on {machine['cpu']}, {machine['cores']} cores, {summary['date']}: api (one "
                f"uvicorn process), {args.concurrency} worker processes, webhooks worker, private Redis, {database}, "
                "all on the same cores as Locust itself. Each user submits a bundled sample clip, polls its job "
                "as the Python client does (0.2 s, then 1.5x longer each time up to 2 s) until it has succeeded "
                "(end-to-end, so rounded up to that poll), and now and then calls /health; 0.5–1.5 s between tasks.",
                "",
                *table,
                "",
                "Targets (issue 5): 0% failures at 50 users; submit p95 ≤ 3× submit p50. The seed's synchronous API "
                "(5 users, 30 s): median 71 ms, p95 7.5 s from its model cold start.",
                DOC_END,
            ]
        )
        replace_section(DOC_START, DOC_END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
