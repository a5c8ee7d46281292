"""A small synchronous client for the service's HTTP API, on httpx.

    from client.api import SttClient
    with SttClient("http://localhost:8000") as stt:
        job = stt.submit("lecture.mp3")
        job = stt.wait(job["id"])
        print(stt.transcript(job["id"], "srt"))
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "canceled"}
Job = dict[str, Any]


class ApiError(Exception):
    """The service answered with an error body: `code` is its stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def idempotency_key(path: Path, model: str | None) -> str:
    """Derived from the file's bytes and the model, so submitting the same file again (say, after an
    interrupted run) returns the job made the first time instead of a second one."""
    digest = hashlib.sha256(f"stt-cli\0{model or ''}\0".encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256-{digest.hexdigest()}"


class SttClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def __enter__(self) -> SttClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            raise ApiError(response.status_code, error["code"], error["message"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(response.status_code, f"http_{response.status_code}", response.text[:200]) from None

    def submit(self, path: str | Path, *, model: str | None = None, key: str | None = None) -> Job:
        """Upload one file as a job. With `key` (see `idempotency_key`) a retry returns the same job."""
        path = Path(path)
        headers = {"Idempotency-Key": key} if key else {}
        data = {"model": model} if model else {}
        with path.open("rb") as fh:
            response = self.http.post("/v1/jobs", files={"file": (path.name, fh)}, data=data, headers=headers)
        return self._check(response).json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> Job:
        return self._check(self.http.get(f"/v1/jobs/{job_id}")).json()  # type: ignore[no-any-return]

    def wait(self, job_id: str, *, timeout: float = 3600.0, on_update: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job ends (0.2 s at first, backing off to 2 s)."""
        deadline, delay = time.monotonic() + timeout, 0.2
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def transcript(self, job_id: str, fmt: str = "txt") -> str:
        response = self.http.get(f"/v1/jobs/{job_id}/transcript", params={"format": fmt})
        return self._check(response).text
