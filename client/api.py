"""A small synchronous client for the service's HTTP API, on httpx.

from client.api import SttClient, batch_key
with SttClient("http://localhost:8000", api_key=None) as stt:  # your stt_... key when auth is on
    job = stt.submit("lecture.mp3")
    job = stt.wait(job["id"])
    print(stt.transcript(job["id"], "srt"))

    batch = stt.submit_batch(["a.wav", "b.mp3"], key=batch_key(["a.wav", "b.mp3"], None))
    batch = stt.wait_batch(batch["id"])
    for line in stt.batch_results(batch["id"]):
        print(line["batch_index"], line["status"], (line["result"] or {}).get("text"))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "canceled"}
Job = dict[str, Any]
Batch = dict[str, Any]


class ApiError(Exception):
    """The service answered with an error body: `code` is its stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def idempotency_key(path: Path, model: str | None, webhook_url: str | None = None) -> str:
    """Derived from the file's bytes and the options, so submitting the same file again (say, after an
    interrupted run) returns the job made the first time instead of a second one."""
    suffix = f"{webhook_url}\0" if webhook_url else ""
    digest = hashlib.sha256(f"stt-cli\0{model or ''}\0{suffix}".encode())
    digest.update(_file_digest(path))
    return f"sha256-{digest.hexdigest()}"


def batch_key(paths: Sequence[str | Path], model: str | None, webhook_url: str | None = None) -> str:
    """The same for the same files (by content, in order), model and webhook: a re-run gets the batch
    the first run made."""
    digest = hashlib.sha256(f"stt-cli-batch\0{model or ''}\0{webhook_url or ''}\0".encode())
    for path in paths:
        digest.update(_file_digest(Path(path)))
    return f"batch-sha256-{digest.hexdigest()}"


class SttClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, headers=headers)

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

    def submit(
        self, path: str | Path, *, model: str | None = None, webhook_url: str | None = None, key: str | None = None
    ) -> Job:
        """Upload one file as a job. With `key` (see `idempotency_key`) a retry returns the same job."""
        path = Path(path)
        headers = {"Idempotency-Key": key} if key else {}
        data = {k: v for k, v in {"model": model, "webhook_url": webhook_url}.items() if v}
        with path.open("rb") as fh:
            response = self.http.post("/v1/jobs", files={"file": (path.name, fh)}, data=data, headers=headers)
        return self._check(response).json()  # type: ignore[no-any-return]

    def submit_url(
        self, url: str, *, model: str | None = None, webhook_url: str | None = None, key: str | None = None
    ) -> Job:
        """A job whose audio the service downloads from `url` (http or https; a presigned URL works)."""
        return self._post_json("/v1/jobs", {"audio_url": url, "model": model, "webhook_url": webhook_url}, key)

    def submit_urls(
        self, urls: Sequence[str], *, model: str | None = None, webhook_url: str | None = None, key: str | None = None
    ) -> Batch:
        """A batch whose audio the service downloads, one job per URL, in order."""
        return self._post_json(
            "/v1/batches", {"audio_urls": list(urls), "model": model, "webhook_url": webhook_url}, key
        )

    def _post_json(self, path: str, body: dict[str, Any], key: str | None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        response = self.http.post(path, json={k: v for k, v in body.items() if v is not None}, headers=headers)
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

    def delete(self, job_id: str) -> None:
        """Cancel the job if it has not ended, and erase its audio and transcript."""
        self._check(self.http.delete(f"/v1/jobs/{job_id}"))

    def transcript(self, job_id: str, fmt: str = "txt") -> str:
        response = self.http.get(f"/v1/jobs/{job_id}/transcript", params={"format": fmt})
        return self._check(response).text

    def submit_batch(
        self,
        paths: Sequence[str | Path],
        *,
        model: str | None = None,
        webhook_url: str | None = None,
        key: str | None = None,
    ) -> Batch:
        """Upload many files as one batch (one multipart request, streamed from disk)."""
        headers = {"Idempotency-Key": key} if key else {}
        data = {k: v for k, v in {"model": model, "webhook_url": webhook_url}.items() if v}
        with contextlib.ExitStack() as stack:
            files = [("files", (Path(p).name, stack.enter_context(Path(p).open("rb")))) for p in paths]
            response = self.http.post("/v1/batches", files=files, data=data, headers=headers)
        return self._check(response).json()  # type: ignore[no-any-return]

    def batch(self, batch_id: str, *, items: bool = True) -> Batch:
        response = self.http.get(f"/v1/batches/{batch_id}", params={"items": str(items).lower()})
        return self._check(response).json()  # type: ignore[no-any-return]

    def wait_batch(
        self, batch_id: str, *, timeout: float = 24 * 3600.0, on_update: Callable[[Batch], None] | None = None
    ) -> Batch:
        """Poll until every job of the batch has ended (0.5 s at first, backing off to 5 s)."""
        deadline, delay = time.monotonic() + timeout, 0.5
        while True:
            batch = self.batch(batch_id, items=False)  # counts only: cheap for a large batch
            if on_update is not None:
                on_update(batch)
            if batch["status"] == "completed":
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} is not complete after {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def batch_results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """One job per item, in file order, as `job()` returns it (`batch_index` is its place in the batch)."""
        with self.http.stream("GET", f"/v1/batches/{batch_id}/results") as response:
            if not response.is_success:
                response.read()
                self._check(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def batch_subtitles(self, batch_id: str, fmt: str) -> bytes:
        """A zip holding an SRT or WebVTT file per succeeded item, named `{index:04d}-{stem}.{fmt}`."""
        response = self.http.get(f"/v1/batches/{batch_id}/results", params={"format": fmt})
        return self._check(response).content
