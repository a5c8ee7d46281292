"""Load test, as the seed ran it: `locust -f bench/locustfile.py --host http://localhost:8000 --headless
-u 5 -r 2 -t 30s`. bench/load.py runs it against a private stack at 5 and 50 users and writes the table.

Each user submits a bundled sample clip (`submit`: POST /v1/jobs until the 202), polls its job as the
Python client does (after 0.2 s, then 1.5x longer each time, at most 2 s) until it is finished, and
reports the whole wait as `end-to-end` (submit to result, so rounded up to the poll it was seen in); now
and then it checks /health. A job that does not succeed counts as a failure.
"""

from __future__ import annotations

import time
from pathlib import Path

from locust import HttpUser, between, task

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CLIPS = [(p.name, p.read_bytes()) for p in sorted(SAMPLES.glob("clip*"))]
FIRST_POLL_S, POLL_BACKOFF, MAX_POLL_S = 0.2, 1.5, 2.0  # as client/api.py SttClient.wait
TIMEOUT_S = 120.0


class Transcriber(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.turn = 0

    @task(10)
    def transcribe(self) -> None:
        name, data = CLIPS[self.turn % len(CLIPS)]
        self.turn += 1
        started = time.perf_counter()
        with self.client.post("/v1/jobs", files={"file": (name, data)}, name="submit", catch_response=True) as r:
            if r.status_code != 202:
                r.failure(f"submit answered {r.status_code}: {r.text[:200]}")
                return
            job_id = r.json()["id"]
        status, error, delay = "queued", None, FIRST_POLL_S
        while time.perf_counter() - started < TIMEOUT_S:
            time.sleep(delay)
            delay = min(delay * POLL_BACKOFF, MAX_POLL_S)
            polled = self.client.get(f"/v1/jobs/{job_id}", name="poll")
            if polled.status_code != 200:
                continue
            body = polled.json()
            status = body["status"]
            if status in ("succeeded", "failed", "canceled"):
                error = body.get("error")
                break
        elapsed_ms = (time.perf_counter() - started) * 1000
        failure = None if status == "succeeded" else RuntimeError(f"job {job_id} ended {status}: {error}")
        self.environment.events.request.fire(
            request_type="JOB",
            name="end-to-end",
            response_time=elapsed_ms,
            response_length=0,
            exception=failure,
            context={},
        )

    @task(1)
    def health(self) -> None:
        self.client.get("/health", name="health")
