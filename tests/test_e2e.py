"""End to end through real processes: uvicorn, a real Redis, a real Celery worker, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import itertools
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jiwer
import numpy as np
import pytest
import soundfile as sf
from redis import Redis
from sqlalchemy import select

from api.main import create_app
from client.api import SttClient
from stt_common import readiness
from stt_common.model_folder import list_models
from stt_common.models import Job
from tests.services import CeleryWorker, RedisServer, ThreadedServer, wait_for
from tests.stack import SAMPLES, Stack, make_stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stt(stack: Stack) -> Iterator[SttClient]:
    """The service as its users drive it: through the bundled client."""
    server = ThreadedServer(create_app(stack.settings))
    with SttClient(server.url, timeout=30) as client:
        yield client
    server.stop()


@pytest.fixture
def api(stt: SttClient) -> httpx.Client:
    """The same connection for the requests the client has no method for."""
    return stt.http


@pytest.fixture
def worker(stack: Stack, tmp_path: Path) -> Iterator[CeleryWorker]:
    w = CeleryWorker(stack.env, tmp_path / "worker.log")
    yield w
    w.stop()


def test_submit_poll_and_fetch_the_transcript(stack: Stack, stt: SttClient, api: httpx.Client, tmp_path: Path) -> None:
    # Celery's default start-up (with mingle, as deployed) starts consuming about a second after the pool
    # is warm; a client that trusts /ready alone must still find its first job taken at once.
    worker = CeleryWorker(stack.env, tmp_path / "worker.log", mingle=True).start(wait=False)
    try:
        wait_for(lambda: api.get("/ready").status_code == 200, 90, "the worker's models to be warm", interval=0.01)
        redis = Redis.from_url(stack.settings.redis_url)
        assert readiness.ready_models(redis) == dict.fromkeys(list_models(stack.settings.models_dir), 1)
        ids = {stt.submit(clip)["id"]: clip for clip in sorted(SAMPLES.glob("clip*"))}
        references = json.loads((SAMPLES / "references.json").read_text())
        texts, hypotheses = [], []
        for job_id, clip in ids.items():
            job = stt.wait(job_id, timeout=60)
            assert job["status"] == "succeeded", job
            texts.append(references[clip.name]["text"])
            hypotheses.append(job["result"]["text"])
            assert job["attempts"] == 1
            assert job["progress"] == 1.0
            assert job["error"] is None
            duration = sf.info(clip).duration
            words = job["result"]["words"]
            assert job["result"]["text"] == " ".join(w["word"] for w in words)
            assert words
            for w in words:
                assert 0 <= w["start"] < w["end"] <= duration + 0.05
                assert 0 < w["confidence"] <= 1
            timings = job["timings"]
            assert timings["queue_wait_s"] >= 0
            assert timings["processing_s"] > 0
            rtf = timings["processing_s"] / job["audio"]["duration_s"]
            assert timings["real_time_factor"] == pytest.approx(rtf, rel=0.05)
            assert api.get(f"/v1/jobs/{job_id}/transcript").text == job["result"]["text"] + "\n"
            assert api.get(f"/v1/jobs/{job_id}/transcript", params={"format": "json"}).json()["words"] == words
        # /ready waited for the worker's main process to consume, not only for warm models: the first job
        # submitted after it was taken at once.
        assert stt.wait(next(iter(ids)), timeout=60)["timings"]["queue_wait_s"] < 0.5
        assert "job " in worker.log()
        assert "RIFF" not in worker.log()
        assert not [h for h in hypotheses if len(h) > 8 and h in worker.log()]  # no transcripts in logs
        assert jiwer.cer(texts, hypotheses) < 0.5  # the bundled model really transcribes held-out sentences
    finally:
        worker.stop()
    assert readiness.ready_models(redis) == {}  # withdrawn on shutdown
    assert api.get("/ready").status_code == 503


@pytest.mark.usefixtures("stack")
def test_undecodable_audio_fails_the_job_once_with_a_code(stt: SttClient, worker: CeleryWorker, tmp_path: Path) -> None:
    # A float WAV whose header is fine (so the api accepts it) but whose samples are NaN.
    path = tmp_path / "nan.wav"
    sf.write(path, np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    worker.start()
    job = stt.wait(stt.submit(path)["id"], timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_audio"
    assert job["attempts"] == 1
    good = stt.wait(stt.submit(SAMPLES / "clip02.flac")["id"], timeout=60)  # the worker lived on
    assert good["status"] == "succeeded"


def test_delete_of_a_queued_job_cancels_it_for_good(stack: Stack, stt: SttClient, worker: CeleryWorker) -> None:
    canceled = stt.submit(SAMPLES / "clip01.wav")["id"]  # no worker yet: it stays queued
    stt.delete(canceled)
    worker.start()
    later = stt.submit(SAMPLES / "clip02.flac")["id"]
    assert stt.wait(later, timeout=60)["status"] == "succeeded"
    wait_for(lambda: "skipped" in worker.log(), 10, "the canceled job's message to be consumed")
    with stack.session_factory() as s:
        job = s.get(Job, uuid.UUID(canceled))
        assert job is not None
        assert job.status == "canceled"
        assert job.attempts == 0
        assert job.text is None
    assert stack.storage.list_keys() == [f"audio/{later[:2]}/{later}"]


def long_clip(tmp_path: Path, seconds: float) -> Path:
    data, rate = sf.read(SAMPLES / "clip01.wav", dtype="float32")
    path = tmp_path / f"long-{seconds}.wav"
    sf.write(path, np.tile(data, int(seconds * rate / len(data)) + 1)[: int(seconds * rate)], rate)
    return path


def test_a_killed_and_restarted_worker_loses_no_queued_job(
    database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Short visibility timeout and lease, so the job running at the kill comes back within the test. The
    # lease must run out before Redis hands the message out again (no reaper runs here): with both at
    # 10 s the redelivery could come a few ms early, find the job still leased, and be dropped.
    stack = make_stack(
        database_url,
        redis_server.url,
        tmp_path,
        broker_visibility_timeout=10,
        job_lease_seconds=4,
        broker_restore_interval=1,
    )
    server = ThreadedServer(create_app(stack.settings))
    worker = CeleryWorker(stack.env, tmp_path / "worker.log")
    try:
        with SttClient(server.url, timeout=30) as stt:
            worker.start()
            clip = long_clip(tmp_path, 120)
            ids = [stt.submit(clip)["id"] for _ in range(6)]

            def processing() -> str | None:
                with stack.session_factory() as s:
                    job = s.scalars(select(Job).where(Job.status == "processing")).first()
                    return str(job.id) if job else None

            interrupted = wait_for(processing, 30, "a job to start", interval=0.01)
            worker.kill()
            with stack.session_factory() as s:
                statuses = [s.get(Job, uuid.UUID(i)).status for i in ids]  # type: ignore[union-attr]
            assert "queued" in statuses  # some were still waiting in Redis when the worker died
            worker.start()
            jobs = [stt.wait(i, timeout=120) for i in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 6
        by_id = {j["id"]: j for j in jobs}
        assert by_id[interrupted]["attempts"] == 2  # redelivered after the kill, reclaimed after its lease
        assert all(j["attempts"] == 1 for i, j in by_id.items() if i != interrupted)
        texts = {j["result"]["text"] for j in jobs}
        assert len(texts) == 1  # the same audio, the same transcript, whichever attempt produced it
    finally:
        worker.stop()
        server.stop()


def test_a_client_that_disconnects_mid_upload_leaves_nothing(stack: Stack) -> None:
    payload = (SAMPLES / "clip01.wav").read_bytes()
    boundary = "xyzzy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\n"
    ).encode()
    total = len(head) + len(payload) + len(f"\r\n--{boundary}--\r\n")
    server = ThreadedServer(create_app(stack.settings))
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {total}\r\n\r\n".encode()
                + head
                + payload[: len(payload) // 2]
            )
            wait_for(lambda: server.server.server_state.tasks, 10, "the api to take the request")
        wait_for(server.idle, 10, "the api to finish with the abandoned request")
        assert stack.storage.list_keys() == []
        with stack.session_factory() as s:
            assert s.scalars(select(Job)).first() is None
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        server.stop()


def test_long_audio_in_any_container_reports_progress_and_gives_subtitles(
    database_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    import srt
    import webvtt

    from stt_common import audio
    from tests.audio_files import FORMATS, encode, silence_opus_webm

    Redis.from_url(redis_server.url).flushall()
    stack = make_stack(database_url, redis_server.url, tmp_path, max_audio_seconds=480, progress_interval_seconds=0.1)
    clips = [audio.decode(p, 16000, 60) for p in sorted(SAMPLES.glob("clip*"))]
    pieces: list[np.ndarray] = []
    while sum(map(len, pieces)) < 6 * 60 * 16000:  # six minutes of sentences and pauses
        pieces += [clips[len(pieces) // 2 % len(clips)], np.zeros(12000, np.float32)]
    mp3 = tmp_path / "lecture.mp3"
    mp3.write_bytes(encode(np.concatenate(pieces), 16000, next(f for f in FORMATS if f.name == "mp3")))
    server = ThreadedServer(create_app(stack.settings))
    worker = CeleryWorker(stack.env, tmp_path / "worker.log")
    try:
        with SttClient(server.url, timeout=30) as stt, stt.http as api:
            worker.start()
            wait_for(lambda: api.get("/ready").status_code == 200, 30, "the worker's models to be warm")
            job_id = stt.submit(mp3)["id"]
            seen: list[tuple[float, float | None]] = []
            listed: list[float] = []

            def watch(body: dict[str, Any]) -> None:
                if body["status"] == "processing":
                    seen.append((body["progress"], body["eta_seconds"]))
                    running = api.get("/v1/jobs", params={"status": "processing"}).json()["data"]
                    listed.extend(j["progress"] for j in running)  # empty if it finished in between

            job = stt.wait(job_id, timeout=120, on_update=watch)
            assert job["status"] == "succeeded", job
            assert job["audio"]["format"] == "mp3"
            assert job["audio"]["duration_s"] > 359
            midway = [(p, eta) for p, eta in seen if 0 < p < 1]
            assert midway
            assert all(eta is not None and eta >= 0 for _, eta in midway)
            assert [p for p, _ in seen] == sorted(p for p, _ in seen)
            assert any(0 < p < 1 for p in listed)

            result = api.get(f"/v1/jobs/{job_id}/transcript", params={"format": "json"}).json()
            assert result["segments"]
            assert " ".join(s["text"] for s in result["segments"]) == result["text"]
            srt_response = api.get(f"/v1/jobs/{job_id}/transcript", params={"format": "srt"})
            assert srt_response.headers["content-type"].startswith("application/x-subrip")
            cues = list(srt.parse(srt_response.text))
            vtt_response = api.get(f"/v1/jobs/{job_id}/transcript", params={"format": "vtt"})
            assert vtt_response.headers["content-type"].startswith("text/vtt")
            vtt = webvtt.from_buffer(io.StringIO(vtt_response.text))
            assert len(cues) == len(vtt.captions) == len(result["segments"])
            for a, b in itertools.pairwise(cues):
                assert a.start < a.end <= b.start < b.end
            for a, b in zip(vtt.captions, vtt.captions[1:], strict=False):
                assert a.start_time.in_milliseconds() < a.end_time.in_milliseconds() <= b.start_time.in_milliseconds()
            texts = [s["text"] for s in result["segments"]]
            assert [c.content for c in cues] == [c.text for c in vtt.captions] == texts
            listed_result = api.get("/v1/jobs").json()["data"][0]["result"]
            summary = {k: result[k] for k in ("text", "raw_text", "duration_s")}
            assert listed_result == summary  # a summary

            # A decoding bomb: 0.2 MB that decodes to 500 s and says nothing of its length up front.
            bomb = tmp_path / "bomb.webm"
            bomb.write_bytes(silence_opus_webm(500))
            failed = stt.wait(stt.submit(bomb)["id"], timeout=60)
            assert failed["status"] == "failed"
            assert failed["error"]["code"] == "audio_too_long"
            assert failed["attempts"] == 1
            # A cut-off Ogg file is refused at the door.
            cut = tmp_path / "cut.ogg"
            cut.write_bytes((SAMPLES / "clip03.ogg").read_bytes()[:20000])
            refused = api.post("/v1/jobs", files={"file": ("cut.ogg", cut.read_bytes())})
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "truncated_audio"
            alive = stt.wait(stt.submit(SAMPLES / "clip02.flac")["id"], timeout=60)  # the worker lived on
            assert alive["status"] == "succeeded"
    finally:
        worker.stop()
        server.stop()


@pytest.mark.usefixtures("stack")
def test_results_are_formatted_unless_the_job_says_not(stt: SttClient, api: httpx.Client, worker: CeleryWorker) -> None:
    clip = sorted(SAMPLES.glob("clip*"))[0]
    worker.start()
    ids = {}
    for choice in ("default", "false"):
        data = {} if choice == "default" else {"format_text": "false"}
        with clip.open("rb") as fh:
            response = api.post("/v1/jobs", files={"file": (clip.name, fh)}, data=data)
        assert response.status_code == 202, response.text
        assert response.json()["format_text"] is (choice == "default")
        ids[choice] = response.json()["id"]
    formatted = stt.wait(ids["default"], timeout=60)["result"]
    raw = stt.wait(ids["false"], timeout=60)["result"]
    assert raw["raw_text"] is None
    assert raw["text"] == raw["text"].lower()
    assert not raw["text"].endswith(".")
    assert formatted["raw_text"] == raw["text"]  # the same audio, the same recognizer text
    assert formatted["text"][0].isupper()
    assert formatted["text"].endswith((".", "?"))
    assert formatted["text"] == " ".join(w["word"] for w in formatted["words"])
    spoken = {(w["start"], w["end"]) for w in raw["words"]}
    for word in formatted["words"]:  # each formatted word starts and ends where spoken words do
        assert word["start"] in {s for s, _ in spoken}
        assert word["end"] in {e for _, e in spoken}
    srt_text = api.get(f"/v1/jobs/{ids['default']}/transcript", params={"format": "srt"}).text
    assert formatted["text"].split()[0] in srt_text
