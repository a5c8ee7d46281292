"""Observability: GET /metrics after real jobs ran through a real worker and the webhooks worker, and
JSON logs from a real worker."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from tests.services import CeleryWorker, ThreadedServer, WebhookReceiver, wait_for
from tests.stack import SAMPLES, Stack

pytestmark = pytest.mark.slow


def scrape(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_jobs_queues_durations_and_webhooks(running: httpx.Client) -> None:
    api = running
    receiver = WebhookReceiver()
    try:
        good = [
            api.post("/v1/jobs", files={"file": (p.name, p.read_bytes())}, data={"webhook_url": receiver.url()})
            for p in (SAMPLES / "clip01.wav", SAMPLES / "clip02.flac")
        ]
        bad = api.post("/v1/jobs", files={"file": ("x.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 40)})
        assert [r.status_code for r in good] == [202, 202]
        assert bad.status_code == 415

        def settled() -> dict | None:  # type: ignore[type-arg]
            m = scrape(api)
            done = m.get(("stt_jobs_finished_total", (("code", ""), ("status", "succeeded"))), 0) == 2
            return m if done and m.get(("stt_webhook_attempts_total", (("outcome", "delivered"),))) == 2 else None

        metrics = wait_for(settled, 60, "both jobs and their webhooks in the metrics", interval=0.2)
    finally:
        receiver.stop()
    assert isinstance(metrics, dict)
    assert metrics[("stt_jobs", (("status", "queued"),))] == 0
    assert metrics[("stt_jobs", (("status", "processing"),))] == 0
    assert ("stt_jobs", (("status", "succeeded"),)) not in metrics  # finished jobs are counted, not queried
    assert metrics[("stt_queue_depth", (("queue", "transcribe"),))] == 0
    for name in ("stt_job_processing_seconds", "stt_job_real_time_factor", "stt_job_queue_wait_seconds"):
        assert metrics[(f"{name}_count", ())] == 2
        assert metrics[(f"{name}_sum", ())] > 0
        assert metrics[(f"{name}_bucket", (("le", "+Inf"),))] == 2
    rtf_buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in metrics.items() if k[0] == "stt_job_real_time_factor_bucket"
    )
    assert [v for _, v in rtf_buckets] == sorted(v for _, v in rtf_buckets)  # cumulative
    assert metrics[("process_resident_memory_bytes", ())] > 0


def test_json_logs_carry_the_job_id_and_never_the_transcript(hook_stack: Stack, tmp_path: Path) -> None:
    env = {**hook_stack.env, "STT_LOG_FORMAT": "json"}
    worker = CeleryWorker(env, tmp_path / "worker.log").start()
    server = ThreadedServer(create_app(hook_stack.settings))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            r = api.post("/v1/jobs", files={"file": ("clip01.wav", (SAMPLES / "clip01.wav").read_bytes())})
            job_id = r.json()["id"]
            done = wait_for(
                lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded" or None, 60, "the job"
            )
            assert done
            text = api.get(f"/v1/jobs/{job_id}").json()["result"]["text"]
    finally:
        server.stop()
        worker.stop()
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert records
    assert all({"time", "level", "logger", "process", "message"} <= r.keys() for r in records)
    mine = [r for r in records if r.get("job_id") == job_id]
    assert any("succeeded" in r["message"] for r in mine)
    assert any("started" in r["message"] for r in mine)
    assert text
    assert text not in worker.log()
