"""Audio by URL: POST /v1/jobs with a JSON body or a form's `audio_url`, downloaded once by the worker
under the SSRF guard. Hostile cases at the door (before and after the API key) and in the fetch: a
redirect to a loopback address, a 404, a body that declares or streams too much, an HTML page, a
server too slow to finish."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from client.api import SttClient
from stt_common import api_keys
from stt_common.db import session_scope
from stt_common.errors import ErrorCode, SttError, UrlForbidden, UrlTooLarge, UrlUnreachable
from stt_common.fetch import check_audio_url, download, redacted
from stt_common.webhooks import is_public, resolve
from tests.services import AudioServer, CeleryWorker, RedisServer, ThreadedServer, free_port, wait_for
from tests.stack import SAMPLES, Stack, job_statuses, make_stack
from tests.test_faults import SLOW, service, sqlite_stack, with_faults

CLIP = (SAMPLES / "clip01.wav").read_bytes()
ALLOW = ["127.0.0.1"]


@pytest.fixture
def audio_server() -> Iterator[AudioServer]:
    server = AudioServer(CLIP)
    yield server
    server.stop()


# --- The fetch itself


def fetch(url: str, max_bytes: int = 10_000_000, deadline_s: float = 20) -> bytes:
    out = io.BytesIO()
    download(url, out, max_bytes=max_bytes, deadline_s=deadline_s, allowlist=ALLOW)
    return out.getvalue()


def test_a_url_and_a_same_host_redirect_are_fetched(audio_server: AudioServer) -> None:
    assert fetch(audio_server.url("/clip.wav?X-Amz-Signature=secret")) == CLIP  # a presigned query passes
    assert fetch(audio_server.url("/redirect-here")) == CLIP


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/redirect-away", UrlForbidden, "not a public address"),  # every hop is checked
        ("/missing", UrlUnreachable, "HTTP 404"),
        ("/huge", UrlTooLarge, "declares"),
        ("/endless", UrlTooLarge, "more than the limit"),
        ("/slow", UrlUnreachable, "within 2 s"),
    ],
)
def test_each_bad_url_fails_with_its_code(
    audio_server: AudioServer, path: str, error: type[SttError], words: str
) -> None:
    with pytest.raises(error, match=words):
        fetch(audio_server.url(path), max_bytes=1_000_000, deadline_s=2)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://example.com/x",
        "http://user:pass@example.com/a.wav",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::ffff:127.0.0.1]/a.wav",
        "http://localhost/a.wav",
        "http://10.0.0.8/a.wav",
        "https://example.com/" + "a" * 3000,
        "http://[::1",
    ],
)
def test_urls_refused_at_the_door(url: str) -> None:
    with pytest.raises(UrlForbidden):
        check_audio_url(url)


def test_a_name_resolving_to_a_private_address_is_refused_when_fetched() -> None:
    """A name passes the door (only literal addresses are judged there) and is judged on what it resolves
    to: this machine's own name resolves to a loopback or private address."""
    name = socket.gethostname()
    assert not any(is_public(ip) for ip in resolve(name, 80)), "this test needs a host name that is not public"
    with pytest.raises(UrlForbidden, match="not a public address"):
        download(f"http://{name}:{free_port()}/a.wav", io.BytesIO(), max_bytes=1, deadline_s=2, allowlist=[])


def test_logs_and_the_job_keep_no_query() -> None:
    assert (
        redacted("https://bucket.s3.amazonaws.com/a/b.wav?X-Amz-Signature=s#f")
        == "https://bucket.s3.amazonaws.com/a/b.wav"
    )


# --- At the door


def test_json_and_form_submissions_and_their_refusals(stack: Stack) -> None:
    with TestClient(create_app(stack.settings)) as client:
        made = client.post(
            "/v1/jobs", json={"audio_url": "https://example.com/talks/a.mp3?sig=s", "metadata": {"k": 1}}
        )
        assert made.status_code == 202, made.text
        job = made.json()
        assert job["status"] == "queued"
        assert job["audio"] == {
            "filename": "a.mp3",
            "format": None,
            "bytes": None,
            "sha256": None,
            "duration_s": None,
            "source_url": "https://example.com/talks/a.mp3",  # never the query
            "purged_at": None,
        }
        assert job["metadata"] == {"k": 1}
        assert client.post("/v1/jobs", data={"audio_url": "https://example.com/b.wav"}).status_code == 202
        deep = b'{"audio_url": "https://e.com/a.wav", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
        nan = b'{"audio_url": "https://e.com/a.wav", "metadata": {"x": NaN}}'
        as_json = {"content-type": "application/json"}
        for body, status, code in [
            ({"content": deep, "headers": as_json}, 422, "validation_error"),  # the parser's recursion limit
            ({"content": nan, "headers": as_json}, 400, "invalid_metadata"),
            ({"content": b"[1, 2]", "headers": as_json}, 422, "validation_error"),
            ({"json": {"audio_url": "http://127.0.0.1/a.wav"}}, 422, "url_forbidden"),
            ({"json": {"audio_url": "file:///etc/passwd"}}, 422, "url_forbidden"),
            ({"json": {"audio_url": "https://e.com/a", "extra": 1}}, 422, "validation_error"),
            ({"json": {"model": "x"}}, 422, "validation_error"),
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "validation_error"),
            (
                {
                    "content": b'{"audio_url": "' + b"a" * 40_000 + b'"}',
                    "headers": {"content-type": "application/json"},
                },
                413,
                "field_too_large",
            ),
            ({"data": {"model": "tr-espeak-small"}}, 422, "validation_error"),  # neither file nor URL
            (
                {"data": {"audio_url": "https://e.com/a.wav"}, "files": {"file": ("a.wav", CLIP)}},
                422,
                "validation_error",
            ),
            (
                {"json": {"audio_url": "https://e.com/a.wav", "webhook_url": "http://10.1.1.1/h"}},
                422,
                "invalid_webhook_url",
            ),
            ({"json": {"audio_url": "https://e.com/a.wav", "model": "nope"}}, 400, "unknown_model"),
        ]:
            r = client.post("/v1/jobs", **body)  # type: ignore[arg-type]
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
    assert len(job_statuses(stack)) == 2  # refusals leave no job


def test_before_the_key_a_json_body_is_not_read(stack: Stack, tmp_path: Path) -> None:
    keyed = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, auth_enabled=True)
    with session_scope(keyed.session_factory) as session:
        key = api_keys.create(session, "acme").plaintext
    with TestClient(create_app(keyed.settings)) as client:
        for headers in ({}, {"Authorization": "Bearer stt_not_a_key"}):
            r = client.post(
                "/v1/jobs",
                content=b'{"audio_url": "' + b"a" * 40_000 + b'"}',
                headers={**headers, "content-type": "application/json"},
            )
            assert r.status_code == 401
        ok = client.post(
            "/v1/jobs", json={"audio_url": "https://example.com/a.wav"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert ok.status_code == 202
    assert len(job_statuses(keyed)) == 1


# --- Through a real worker


@pytest.mark.slow
def test_through_a_worker_good_urls_succeed_and_bad_ones_fail_with_their_codes(
    stack: Stack, audio_server: AudioServer, tmp_path: Path
) -> None:
    fetching = make_stack(
        stack.settings.database_url,
        stack.settings.redis_url,
        tmp_path,
        webhook_allowed_hosts=ALLOW,
        max_upload_bytes=1_000_000,
        url_fetch_timeout_seconds=2.0,
    )
    worker = CeleryWorker(fetching.env, tmp_path / "worker.log").start()
    server = ThreadedServer(create_app(fetching.settings))
    expected = {
        "/clip.wav": None,
        "/redirect-here": None,
        "/redirect-away": ErrorCode.url_forbidden,
        "/missing": ErrorCode.url_unreachable,
        "/huge": ErrorCode.url_too_large,
        "/page.html": ErrorCode.url_not_audio,
        "/slow": ErrorCode.url_unreachable,
    }
    try:
        with SttClient(server.url) as stt:
            ids = {
                path: stt.http.post("/v1/jobs", json={"audio_url": audio_server.url(path)}).json()["id"]
                for path in expected
            }
            for path, code in expected.items():
                job = stt.wait(ids[path], timeout=90)
                if code is None:
                    assert job["status"] == "succeeded", job
                    assert job["audio"]["bytes"] == len(CLIP)
                    assert job["audio"]["format"] == "wav"
                    assert job["audio"]["duration_s"] > 3
                    assert job["result"]["text"]
                else:
                    assert (job["status"], job["error"]["code"]) == ("failed", code), (path, job)
                    assert job["attempts"] == 1  # a bad URL is never retried
    finally:
        server.stop()
        worker.stop()
    assert "X-Amz" not in worker.log()
    assert audio_server.hits["/clip.wav"] == 2  # once for /clip.wav, once after /redirect-here


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.mark.slow
def test_a_worker_killed_after_the_download_does_not_fetch_again(
    own_redis: RedisServer, audio_server: AudioServer, tmp_path: Path
) -> None:
    stack = sqlite_stack(own_redis, tmp_path, webhook_allowed_hosts=ALLOW)
    doomed = CeleryWorker(with_faults(stack, SLOW.format(60)), tmp_path / "doomed.log").start()
    survivor = CeleryWorker(stack.env, tmp_path / "survivor.log")
    with service(stack, tmp_path, survivor, doomed) as (stt, _):
        job_id = stt.http.post("/v1/jobs", json={"audio_url": audio_server.url("/clip.wav?sig=1")}).json()["id"]
        wait_for(lambda: stt.job(job_id)["audio"]["bytes"], 30, "the audio to be fetched")  # then held
        doomed.kill()
        survivor.start()
        job = stt.wait(job_id, timeout=120)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert audio_server.hits["/clip.wav"] == 1  # the second attempt used the stored copy
