"""Audio by URL: POST /v1/jobs with a JSON body or a form's `audio_url`, downloaded once by the worker
under the SSRF guard. Hostile cases at the door (before and after the API key) and in the fetch: a
redirect to a loopback address, a 404, a body that declares or streams too much, an HTML page, a
server too slow to finish."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from tests.stack import SAMPLES, SLOW, Stack, job_statuses, make_stack, service, sqlite_stack, with_faults

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


def test_a_resolver_that_hangs_is_bounded_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo cannot be interrupted; a name server that never answers must not hold the worker past
    the download's deadline."""
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.example":
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    with pytest.raises(UrlUnreachable, match="did not resolve in time"):
        download("http://slow-dns.example/a.wav", io.BytesIO(), max_bytes=1, deadline_s=0.5, allowlist=[])
    assert time.monotonic() - started < 1.5


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
                400,
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


def test_a_batch_of_urls_by_json_and_by_form(stack: Stack, tmp_path: Path) -> None:
    """Each URL is an item checked on its own: a refused one is a failed item with its code, the rest are
    queued in order after any files; the request as a whole is bounded before anything is stored."""
    small = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, max_batch_items=5)
    with TestClient(create_app(small.settings)) as client:
        urls = ["https://example.com/a.mp3?sig=s", "http://127.0.0.1/b.wav", "not a url", "https://e.com/d/"]
        made = client.post("/v1/batches", json={"audio_urls": urls, "metadata": {"k": 1}})
        assert made.status_code == 202, made.text
        items = made.json()["items"]
        assert [(i["filename"], i["status"], (i["error"] or {}).get("code")) for i in items] == [
            ("a.mp3", "queued", None),
            ("b.wav", "failed", "url_forbidden"),
            ("not a url", "failed", "url_forbidden"),  # shown as given, to find it in the list
            (None, "queued", None),
        ]
        job = client.get(f"/v1/jobs/{items[0]['job_id']}").json()
        assert (job["audio"]["source_url"], job["batch_index"], job["metadata"]) == (
            "https://example.com/a.mp3",
            0,
            {"k": 1},
        )
        form = client.post(
            "/v1/batches",
            data={"audio_urls": ["https://e.com/x.wav", "https://e.com/y.wav"]},
            files={"files": ("first.wav", CLIP)},
        )
        assert form.status_code == 202, form.text
        assert [i["filename"] for i in form.json()["items"]] == ["first.wav", "x.wav", "y.wav"]

        key = {"Idempotency-Key": "urls-1"}
        first = client.post("/v1/batches", json={"audio_urls": ["https://e.com/1.wav"]}, headers=key)
        again = client.post("/v1/batches", json={"audio_urls": ["https://e.com/1.wav"]}, headers=key)
        other = client.post("/v1/batches", json={"audio_urls": ["https://e.com/2.wav"]}, headers=key)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert other.json()["error"]["code"] == "idempotency_key_reused"

        as_json = {"content-type": "application/json"}
        six = [f"https://e.com/{i}.wav" for i in range(6)]
        limit = 16 * 1024 + 5 * (2 * 1024 + 16)
        for body, status, code in [
            ({"json": {"audio_urls": six}}, 413, "too_many_files"),
            ({"data": {"audio_urls": six}}, 413, "too_many_files"),
            ({"data": {"audio_urls": six[:3]}, "files": [("files", ("a.wav", CLIP))] * 3}, 413, "too_many_files"),
            ({"json": {"audio_urls": []}}, 422, "empty_batch"),
            ({"json": {"audio_urls": "https://e.com/a.wav"}}, 422, "validation_error"),
            ({"json": {"audio_urls": [1, 2]}}, 422, "validation_error"),
            (
                {"json": {"audio_urls": ["https://e.com/a.wav"], "webhook_url": "http://10.0.0.1/"}},
                422,
                "invalid_webhook_url",
            ),
            ({"content": b'{"audio_urls": ["' + b"a" * limit + b'"]}', "headers": as_json}, 400, "field_too_large"),
            ({"data": {"audio_urls": "https://e.com/" + "a" * 9000}}, 400, "field_too_large"),
            ({"data": {"audio_urls": ["https://e.com/a.wav"] * 40}}, 400, "too_many_parts"),
        ]:
            r = client.post("/v1/batches", **body)  # type: ignore[arg-type]
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text[:300])
    assert len(job_statuses(small)) == 4 + 3 + 1  # refusals leave no job


def test_before_the_key_a_batch_body_is_not_read(stack: Stack, tmp_path: Path) -> None:
    keyed = make_stack(stack.settings.database_url, stack.settings.redis_url, tmp_path, auth_enabled=True)
    with session_scope(keyed.session_factory) as session:
        key = api_keys.create(session, "acme").plaintext
    huge = b'{"audio_urls": ["' + b"a" * 5_000_000 + b'"]}'
    many = {"audio_urls": ["https://e.com/a.wav"] * 2000}
    with TestClient(create_app(keyed.settings)) as client:
        for headers, expected in [
            ({}, ["missing_api_key", "missing_api_key"]),
            ({"Authorization": "Bearer stt_not_a_key"}, ["invalid_api_key", "invalid_api_key"]),
            ({"Authorization": f"Bearer {key}"}, ["field_too_large", "too_many_parts"]),
        ]:
            answers = [
                client.post("/v1/batches", content=huge, headers={**headers, "content-type": "application/json"}),
                client.post("/v1/batches", data=many, headers=headers),
            ]
            assert [r.json()["error"]["code"] for r in answers] == expected
    assert job_statuses(keyed) == {}


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
            ids = {path: stt.submit_url(audio_server.url(path))["id"] for path in expected}
            batch = stt.submit_urls([audio_server.url(p) for p in ("/clip.wav", "/missing", "/page.html")])
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
            assert stt.wait_batch(batch["id"], timeout=60)["counts"] == {
                "queued": 0,
                "processing": 0,
                "succeeded": 1,
                "failed": 2,
                "canceled": 0,
            }
            results = list(stt.batch_results(batch["id"]))
            assert [(r["audio"]["filename"], r["status"], (r["error"] or {}).get("code")) for r in results] == [
                ("clip.wav", "succeeded", None),
                ("missing", "failed", ErrorCode.url_unreachable),
                ("page.html", "failed", ErrorCode.url_not_audio),
            ]
            assert results[0]["result"]["text"] == stt.job(ids["/clip.wav"])["result"]["text"]
    finally:
        server.stop()
        worker.stop()
    assert "X-Amz" not in worker.log()
    assert audio_server.hits["/clip.wav"] == 3  # for /clip.wav, after /redirect-here, and the batch's


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
