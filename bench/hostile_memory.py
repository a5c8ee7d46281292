"""Hostile-input memory: the api's peak RSS while it refuses zip bombs, three at once.

Starts the api alone (`python -m api.serve`, its own redis-server and SQLite file; no worker is needed:
every member is refused from the archive's declarations), posts two 1.1 MB zips of 1,000 members of
1 MiB zeros and one 1 MB zip of a single 1 GiB member at the same time, and reports the api's RSS before
and its peak (VmHWM) after, with each answer's codes. docs/SECURITY.md quotes the result.

    python bench/hostile_memory.py [--out bench/results/hostile_memory.json]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from report import PrivateStack, cpu_model, free_port, private_env, redis_command, write_results  # bench/report.py

REPO = Path(__file__).resolve().parent.parent


def thousand_megabytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(1000):
            zf.writestr(f"{i:04d}.wav", bytes(1 << 20))
    return buf.getvalue()


def one_gigabyte() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("silence.wav", "w", force_zip64=True) as out:
        for _ in range(1024):
            out.write(bytes(1 << 20))
    return buf.getvalue()


def wait_for_health(client: httpx.Client, deadline: float, logs: Path) -> None:
    """/ready wants a worker; this needs only the api answering."""
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the api did not answer; logs in {logs}")


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} for process {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hostile_memory.json")
    args = parser.parse_args()
    bombs = {
        "1,000 x 1 MiB zeros (a)": thousand_megabytes(),
        "1,000 x 1 MiB zeros (b)": thousand_megabytes(),
        "1 GiB zeros in one member": one_gigabyte(),
    }
    work = Path(tempfile.mkdtemp(prefix="stt-bench-hostile-"))
    redis_port = free_port()
    env = private_env(work, redis_port)
    stack = PrivateStack(work, env, REPO)
    try:
        stack.spawn(
            "redis",
            redis_command(redis_port, work),
        )
        subprocess.run(
            [sys.executable, "-m", "stt_common.migrate", "--wait", "10"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        stack.spawn("api", [sys.executable, "-m", "api.serve", "--port", str(stack.api_port), "--log-level", "warning"])
        api_pid = stack.procs[-1].pid
        with httpx.Client(base_url=stack.base_url, timeout=300) as client:
            wait_for_health(client, time.monotonic() + 60, work)
            rss_before, peak_before = memory_mb(api_pid, "VmRSS"), memory_mb(api_pid, "VmHWM")
            started = time.perf_counter()
            with ThreadPoolExecutor(len(bombs)) as pool:
                answers = list(
                    pool.map(
                        lambda body: client.post("/v1/batches", files={"archive": ("bomb.zip", body)}), bombs.values()
                    )
                )
            seconds = time.perf_counter() - started
            peak_after = memory_mb(api_pid, "VmHWM")
    finally:
        stack.stop()
    rows: list[dict[str, Any]] = []
    for (name, body), answer in zip(bombs.items(), answers, strict=True):
        codes = sorted({item["error"]["code"] for item in answer.json().get("items", []) if item["error"]})
        rows.append({"archive": name, "bytes": len(body), "status": answer.status_code, "item_codes": codes})
    summary = {
        "rss_before_mb": round(rss_before, 1),
        "peak_before_mb": round(peak_before, 1),
        "peak_after_mb": round(peak_after, 1),
        "seconds": round(seconds, 2),
        "archives": rows,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/hostile_memory.py",
    }
    table = ["| archive | size | answer | item codes |", "|---|---|---|---|"]
    table += [
        f"| {r['archive']} | {r['bytes'] / 1e6:.2f} MB | {r['status']} | {', '.join(r['item_codes'])} |" for r in rows
    ]
    table.append(
        f"| api RSS before / peak after (three at once, {seconds:.1f} s) | | "
        f"{rss_before:.0f} / {peak_after:.0f} MB | +{peak_after - peak_before:.0f} MB over the earlier peak |"
    )
    write_results(args.out, summary, f"hostile memory, {cpu_model()}, {os.cpu_count()} cores", table)


if __name__ == "__main__":
    main()
