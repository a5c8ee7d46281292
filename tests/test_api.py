"""The HTTP contract through the real app, a real Redis and a real database (no worker needed)."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import func, select

from api.idempotency import scoped_key
from api.main import create_app
from stt_common.models import DEFAULT_TENANT, Batch, IdempotencyKey, Job, WebhookDelivery
from tests.audio_files import FORMATS, Format, encode, video_without_sound, wav_with_channels
from tests.services import ThreadedServer, wait_for
from tests.stack import SAMPLES, Stack, make_stack


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((int(seconds * rate), channels)) * 0.1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings)) as c:
        yield c


def job_count(stack: Stack) -> int:
    with stack.session_factory() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def assert_nothing_left(stack: Stack) -> None:
    assert job_count(stack) == 0
    assert stack.storage.list_keys() == []


def queued_messages(stack: Stack) -> int:
    return int(Redis.from_url(stack.settings.redis_url).llen("transcribe"))


def test_submit_stores_audio_records_job_and_enqueues_its_id(client: TestClient, stack: Stack) -> None:
    clip = SAMPLES / "clip01.wav"
    r = client.post("/v1/jobs", files={"file": ("clip01.wav", clip.read_bytes(), "audio/wav")})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    assert body["model"] == stack.settings.default_model
    assert body["audio"]["bytes"] == clip.stat().st_size
    assert body["audio"]["duration_s"] == pytest.approx(sf.info(clip).duration, abs=0.01)
    assert stack.storage.list_keys() == [f"audio/{body['id'][:2]}/{body['id']}"]
    assert queued_messages(stack) == 1
    raw = Redis.from_url(stack.settings.redis_url).lindex("transcribe", 0)
    assert isinstance(raw, bytes)
    assert body["id"].encode() in raw
    assert b"RIFF" not in raw
    assert client.get(f"/v1/jobs/{body['id']}").json()["status"] == "queued"


@pytest.mark.parametrize("name", ["clip01.wav", "clip02.flac", "clip03.ogg", "clip04.mp3"])
def test_each_sample_format_is_accepted(client: TestClient, name: str) -> None:
    r = client.post("/v1/jobs", files={"file": (name, (SAMPLES / name).read_bytes())})
    assert r.status_code == 202, r.text
    assert r.json()["audio"]["format"] == Path(name).suffix[1:]


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_every_container_is_recognised_by_its_content_not_its_name(client: TestClient, fmt: Format) -> None:
    rate = 48000 if fmt.codec == "libopus" else 22050
    data = encode(np.zeros(rate, np.float32) + 0.01, rate, fmt, channels=fmt.channel_counts[-1])
    r = client.post("/v1/jobs", files={"file": ("recording.wav", data, "audio/wav")})  # the name lies
    assert r.status_code == 202, r.text
    expected = {"ipod": "m4a", "matroska": "mkv"}.get(fmt.container, fmt.container)
    assert r.json()["audio"]["format"] == expected
    assert r.json()["audio"]["duration_s"] == pytest.approx(1, abs=0.1)


def two_hours_of_flac() -> bytes:
    fmt = next(f for f in FORMATS if f.name == "flac")
    return encode(np.zeros(8000 * 7200, np.float32), 8000, fmt)


def half_an_m4a() -> bytes:
    from stt_common import audio

    fmt = next(f for f in FORMATS if f.name == "m4a-aac")
    data = encode(audio.decode(SAMPLES / "clip01.wav", 16000, 60), 16000, fmt)
    return data[: len(data) // 2]


TRUNCATED = (SAMPLES / "clip01.wav").read_bytes()[:1000]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 400, "empty_file"),
        ("Merhaba, bu bir metin dosyası.\n".encode() * 20, 415, "invalid_audio"),
        (PNG, 415, "invalid_audio"),
        (TRUNCATED, 422, "truncated_audio"),
        (wav_bytes(0), 422, "empty_audio"),
        ((SAMPLES / "clip03.ogg").read_bytes()[:20000], 422, "truncated_audio"),
        (half_an_m4a(), 415, "invalid_audio"),  # its index (moov) is at the end, cut off
        (video_without_sound(), 422, "no_audio_stream"),
        (wav_with_channels(64), 415, "unsupported_audio"),
        (b"#EXTM3U\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data\n", 415, "invalid_audio"),
    ],
    ids=[
        "empty",
        "text",
        "png",
        "truncated-wav",
        "zero-samples",
        "truncated-ogg",
        "truncated-m4a",
        "video-without-sound",
        "64-channels",
        "playlist",
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(
    client: TestClient, stack: Stack, content: bytes, status: int, code: str
) -> None:
    r = client.post("/v1/jobs", files={"file": ("upload.wav", content, "audio/wav")})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert_nothing_left(stack)
    assert queued_messages(stack) == 0


def test_a_header_declaring_hours_is_refused_before_anything_is_stored(stack: Stack, tmp_path: Path) -> None:
    capped = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, max_audio_seconds=3600)
    with TestClient(create_app(capped.settings)) as c:
        r = c.post("/v1/jobs", files={"file": ("small.flac", two_hours_of_flac())})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "audio_too_long"
    assert_nothing_left(capped)


def test_upload_over_the_size_cap_is_413(stack: Stack, tmp_path: Path) -> None:
    small = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, max_upload_bytes=50_000)
    with TestClient(create_app(small.settings)) as c:
        r = c.post("/v1/jobs", files={"file": ("big.wav", wav_bytes(3.0))})  # ~96 kB
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "file_too_large"
    assert_nothing_left(small)


def test_streamed_upload_without_length_is_cut_off_at_the_cap(stack: Stack, tmp_path: Path) -> None:
    small = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, max_upload_bytes=50_000)
    payload = wav_bytes(10.0)
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    with TestClient(create_app(small.settings)) as c:
        r = c.post("/v1/jobs", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "file_too_large"
    assert_nothing_left(small)


def test_audio_over_the_duration_limit_is_refused(stack: Stack, tmp_path: Path) -> None:
    short = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, max_audio_seconds=2.0)
    with TestClient(create_app(short.settings)) as c:
        r = c.post("/v1/jobs", files={"file": ("long.wav", wav_bytes(3.0))})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "audio_too_long"
    assert_nothing_left(short)


def test_unknown_model_is_refused(client: TestClient, stack: Stack) -> None:
    r = client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(1.0))}, data={"model": "no-such-model"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_model"
    assert_nothing_left(stack)


def test_missing_file_field_is_a_validation_error(client: TestClient, stack: Stack) -> None:
    r = client.post("/v1/jobs", data={"model": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert_nothing_left(stack)


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "1" * 300])
def test_unknown_or_malformed_job_id_is_404(client: TestClient, job_id: str) -> None:
    for method, path in [("GET", ""), ("GET", "/transcript"), ("DELETE", "")]:
        r = client.request(method, f"/v1/jobs/{job_id}{path}")
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "job_not_found"


def test_filename_is_kept_for_display_but_never_used_as_a_path(client: TestClient, stack: Stack) -> None:
    r = client.post("/v1/jobs", files={"file": ("../../etc/passwd.wav", wav_bytes(1.0))})
    assert r.status_code == 202
    assert r.json()["audio"]["filename"] == "passwd.wav"
    assert all(k.startswith("audio/") and "passwd" not in k for k in stack.storage.list_keys())


def test_list_is_newest_first_with_cursor_pages_and_status_filter(client: TestClient) -> None:
    ids = [client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))}).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    assert len(client.get("/v1/jobs", params={"status": "queued"}).json()["data"]) == 5
    assert client.get("/v1/jobs", params={"status": "succeeded"}).json()["data"] == []
    r = client.get("/v1/jobs", params={"status": "bogus"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    r = client.get("/v1/jobs", params={"cursor": "garbage"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_cursor"


def test_transcript_of_an_unfinished_job_is_409(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))}).json()["id"]
    r = client.get(f"/v1/jobs/{job_id}/transcript")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "job_not_succeeded"


def test_delete_cancels_a_queued_job_and_removes_its_audio(client: TestClient, stack: Stack) -> None:
    job_id = client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))}).json()["id"]
    assert len(stack.storage.list_keys()) == 1
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert stack.storage.list_keys() == []
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    with stack.session_factory() as s:
        job = s.get(Job, uuid.UUID(job_id))
        assert job is not None
        assert job.status == "canceled"
        assert job.audio_key is None
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 404


def test_models_health_and_openapi(client: TestClient, stack: Stack) -> None:
    models = client.get("/v1/models").json()["data"]
    default = [m for m in models if m["default"]]
    assert [m["name"] for m in default] == [stack.settings.default_model]
    assert "int8" in default[0]["variants"]
    assert client.get("/health").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/transcript", "/v1/models", "/ready"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_ready_is_503_without_a_worker(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["broker"] == "ok"
    assert r.json()["checks"]["storage"] == "ok"
    assert r.json()["checks"]["workers"].startswith("error")


def test_ready_without_a_worker_where_workers_scale_from_zero(stack: Stack, tmp_path: Path) -> None:
    """With KEDA, workers start when jobs wait: the api must be ready (and take jobs) before any worker."""
    scaled = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, ready_requires_worker=False)
    with TestClient(create_app(scaled.settings)) as c:
        r = c.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_broker_down_refuses_the_job_and_leaves_nothing(stack: Stack, tmp_path: Path) -> None:
    from tests.services import free_port

    dead = make_stack(stack.settings.database_url, f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    with TestClient(create_app(dead.settings)) as c:
        r = c.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))})
        keyed = c.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))}, headers={"Idempotency-Key": "k"})
        batch = c.post(
            "/v1/batches",
            files=[("files", ("a.wav", wav_bytes(0.5))), ("files", ("x.txt", b"no" * 50))],
            data={"webhook_url": "https://receiver.example/hook"},
            headers={"Idempotency-Key": "b"},
        )
    for answer in (r, keyed, batch):
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "queue_unavailable"
        assert answer.headers["Retry-After"]
    assert dead.storage.list_keys() == []
    with dead.session_factory() as s:
        assert s.query(Job).count() == 4
        assert all(j.deleted_at is not None for j in s.scalars(select(Job)))
        assert all(b.deleted_at is not None for b in s.scalars(select(Batch)))
        assert s.query(WebhookDelivery).count() == 0  # the refused item's unsent event went with the batch
        for key in ("k", "b"):  # a retry with the same key can still succeed
            assert s.get(IdempotencyKey, scoped_key(DEFAULT_TENANT, key)) is None
    with TestClient(create_app(stack.settings)) as c:  # the broker is back
        retried = c.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(0.5))}, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 202
    assert "Idempotent-Replayed" not in retried.headers


def test_openai_endpoint_times_out_with_the_job_id_and_the_job_goes_on(stack: Stack, tmp_path: Path) -> None:
    impatient = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, openai_wait_seconds=0.5)
    with TestClient(create_app(impatient.settings)) as c:  # no worker runs: the job stays queued
        r = c.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("a.flac", (SAMPLES / "clip02.flac").read_bytes())},
        )
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "transcription_timeout"
        job_id = r.json()["error"]["job_id"]
        assert r.headers["location"] == f"/v1/jobs/{job_id}"
        assert job_id in r.json()["error"]["message"]
        assert c.get(r.headers["location"]).json()["status"] == "queued"
    assert queued_messages(impatient) == 1


def test_deleting_the_job_an_openai_request_waits_for_answers_it_job_canceled(stack: Stack) -> None:
    server = ThreadedServer(create_app(stack.settings))  # no worker runs: the job stays queued until deleted
    answers: list[httpx.Response] = []
    try:
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{server.url}/v1/audio/transcriptions",
                    data={"model": "whisper-1"},
                    files={"file": ("a.flac", (SAMPLES / "clip02.flac").read_bytes())},
                    timeout=60,
                )
            )
        )
        waiting.start()
        listed = wait_for(lambda: httpx.get(f"{server.url}/v1/jobs").json()["data"], 20, "the job to be listed")
        assert httpx.delete(f"{server.url}/v1/jobs/{listed[0]['id']}").status_code == 204
        waiting.join(30)
    finally:
        server.stop()
    (answer,) = answers
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "job_canceled"


def test_an_idempotency_key_replays_the_same_job_and_refuses_a_different_request(
    client: TestClient, stack: Stack
) -> None:
    clip = (SAMPLES / "clip01.wav").read_bytes()
    first = client.post("/v1/jobs", files={"file": ("a.wav", clip)}, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/jobs", files={"file": ("renamed.wav", clip)}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert queued_messages(stack) == 1
    assert len(stack.storage.list_keys()) == 1

    other_audio = client.post(
        "/v1/jobs",
        files={"file": ("b.flac", (SAMPLES / "clip02.flac").read_bytes())},
        headers={"Idempotency-Key": "k-1"},
    )
    other_model = client.post(
        "/v1/jobs",
        files={"file": ("a.wav", clip)},
        data={"model": "tr-espeak-small"},
        headers={"Idempotency-Key": "k-1"},
    )
    for refused in (other_audio, other_model):
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert queued_messages(stack) == 1
    assert len(stack.storage.list_keys()) == 1

    fresh = client.post("/v1/jobs", files={"file": ("a.wav", clip)}, headers={"Idempotency-Key": "k-2"})
    assert fresh.status_code == 202
    assert fresh.json()["id"] != first.json()["id"]
    bad = client.post("/v1/jobs", files={"file": ("a.wav", b"not audio" * 50)}, headers={"Idempotency-Key": "k-3"})
    assert bad.status_code == 415  # a refused request records no key: the client may fix it and retry
    retried = client.post("/v1/jobs", files={"file": ("a.wav", clip)}, headers={"Idempotency-Key": "k-3"})
    assert retried.status_code == 202


def test_concurrent_retries_with_one_key_make_one_job(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    clip = (SAMPLES / "clip02.flac").read_bytes()
    with TestClient(create_app(stack.settings)) as c, ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(
                lambda _: c.post("/v1/jobs", files={"file": ("a.flac", clip)}, headers={"Idempotency-Key": "same"}),
                range(8),
            )
        )
    assert {r.status_code for r in replies} == {202}
    assert len({r.json()["id"] for r in replies}) == 1
    with stack.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
    assert len(stack.storage.list_keys()) == 1
    assert queued_messages(stack) == 1
