"""`make demo`: start the api and a worker on the default settings, send the bundled sample clips
through the real queue, print each transcript next to its reference, and stop everything again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jiwer

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
RUN = REPO / ".run"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
    RUN.mkdir(exist_ok=True)
    log = (RUN / f"demo-{name}.log").open("wb")
    return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(client: httpx.Client, procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a service exited during start-up; see .run/demo-*.log")
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not become ready; see .run/demo-*.log")


def main() -> int:
    port = free_port()
    python = sys.executable
    worker = start(
        "worker",
        [
            python,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            "transcribe",
            "--loglevel",
            "INFO",
            "-n",
            f"demo-{port}@%h",
        ],
    )
    api = start("api", [python, "-m", "api.serve", "--host", "127.0.0.1", "--port", str(port)])
    references: dict[str, dict[str, object]] = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    failures = 0
    key = ""
    try:
        # The api requires a key, as in production: make one for a `demo` tenant, as an operator would.
        key = subprocess.run(
            [python, "-m", "api.admin", "keys", "create", "--tenant", "demo", "--name", "make demo"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"API key for tenant demo: {key[:13]}… (python -m api.admin keys create --tenant demo)")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers) as client:
            wait_ready(client, [worker, api])
            model = next(m for m in client.get("/v1/models").json()["data"] if m["default"])
            print(f"api on :{port}, model {model['name']}: {model['description']}\n")
            submitted = {}
            for name in references:
                with (SAMPLES / name).open("rb") as fh:
                    r = client.post("/v1/jobs", files={"file": (name, fh)})
                r.raise_for_status()
                submitted[name] = r.json()["id"]
            hypotheses, refs = [], []
            for name, job_id in submitted.items():
                deadline = time.monotonic() + 60
                while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "processing"):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                if job["status"] != "succeeded":
                    failures += 1
                    print(f"{name}: {job['status']} {job.get('error')}")
                    continue
                t = job["timings"]
                print(
                    f"{name}  {job['audio']['duration_s']:.2f} s audio, waited {t['queue_wait_s'] * 1000:.0f} ms, "
                    f"processed in {t['processing_s'] * 1000:.0f} ms (RTF {t['real_time_factor']:.4f})"
                )
                voice = f"voice {references[name]['voice']}" + (
                    ", held out from training" if references[name]["held_out_voice"] else ""
                )
                print(f"  reference : {references[name]['text']}  ({voice})")
                result = job["result"]
                print(f"  transcript: {result['text']}")
                if result.get("raw_text") is not None:  # the references are written as the recognizer writes
                    print(f"  recognizer: {result['raw_text']}")
                hypotheses.append(result["raw_text"] if result.get("raw_text") is not None else result["text"])
                refs.append(str(references[name]["text"]))
            if hypotheses:
                print(
                    f"\nWER of the recognizer's text over {len(hypotheses)} held-out sentences: "
                    f"{jiwer.wer(refs, hypotheses):.3f}, CER {jiwer.cer(refs, hypotheses):.3f}"
                )
    finally:
        stop(api)
        stop(worker)
        if key:  # the demo's key is not left behind
            subprocess.run([python, "-m", "api.admin", "keys", "revoke", key], cwd=REPO, capture_output=True)
    print("\ndemo finished: api and worker stopped" + (f"; {failures} job(s) did not succeed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
