"""Hostile requests (not hostile files: tests/test_hostile.py has those): form fields built to break
the tenant's own jobs, zip bombs, bodies sent without a key, slow clients and requests that wait.
Each is refused with a code and leaves nothing behind."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from stt_common.migrate import upgrade
from stt_common.models import Batch, Job
from tests.services import ApiProcess, RedisServer, ThreadedServer, wait_for
from tests.stack import SAMPLES, Stack, make_stack, migrated_sqlite
from tests.test_auth import new_key

CLIP = (SAMPLES / "clip01.wav").read_bytes()

HOSTILE_METADATA = {
    "300 nested lists": '{"k": ' + "[" * 300 + "]" * 300 + "}",
    "2000 nested lists": '{"k": ' + "[" * 2000 + "]" * 2000 + "}",
    "17 nested objects": '{"k": ' * 17 + "1" + "}" * 17,
    "NaN": '{"score": NaN}',
    "Infinity": '{"score": Infinity}',
    "-Infinity": '{"score": -Infinity}',
}


def _rows(stack: Stack) -> tuple[int, int]:
    with stack.session_factory() as session:
        return session.query(Job).count(), session.query(Batch).count()


@pytest.mark.parametrize("what", sorted(HOSTILE_METADATA))
def test_metadata_too_deep_or_not_json_is_refused_before_anything_is_made(stack: Stack, what: str) -> None:
    metadata = HOSTILE_METADATA[what]
    with TestClient(create_app(stack.settings)) as client:
        for path, files in (("/v1/jobs", {"file": ("a.wav", CLIP)}), ("/v1/batches", {"files": ("a.wav", CLIP)})):
            r = client.post(path, files=files, data={"metadata": metadata})
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_metadata"), (path, r.text)
        assert client.get("/v1/jobs").status_code == 200
    assert _rows(stack) == (0, 0)
    assert stack.storage.list_keys() == []


def test_metadata_at_the_depth_limit_and_with_brackets_in_strings_is_kept_as_given(stack: Stack) -> None:
    metadata = {"note": '[[[[{{{{ "quoted" \\', "deep": json.loads("[" * 15 + "]" * 15)}
    with TestClient(create_app(stack.settings)) as client:
        r = client.post("/v1/jobs", files={"file": ("a.wav", CLIP)}, data={"metadata": json.dumps(metadata)})
        assert r.status_code == 202, r.text
        assert client.get(f"/v1/jobs/{r.json()['id']}").json()["metadata"] == metadata
        assert client.get("/v1/jobs").status_code == 200


# --- Bodies without a key, slow bodies and slow headers, against `python -m api.serve` in its own process.


@pytest.fixture
def guarded_api(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[ApiProcess, Stack, Path]]:
    """The api as deployed (auth on), with short time limits, its temporary files in a folder of its own."""
    url = f"sqlite:///{tmp_path / 'stt.db'}"
    upgrade(url)
    stack = make_stack(
        url,
        redis_server.url,
        tmp_path,
        auth_enabled=True,
        header_timeout_seconds=2.0,
        body_idle_timeout_seconds=2.0,
        body_min_bytes_per_second=1024,
    )
    spool = tmp_path / "spool"
    spool.mkdir()
    api = ApiProcess({**stack.env, "TMPDIR": str(spool)}, tmp_path / "api.log")
    try:
        yield api, stack, spool
    finally:
        api.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_upload(api: ApiProcess, length: int, headers: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    sock.sendall(
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n{headers}\r\n".encode()
    )
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, object], float]:
    """(status, JSON body, seconds waited) of the response on a raw socket."""
    started = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body[: _length(data)]), time.monotonic() - started


def _length(data: bytes) -> int:
    match = re.search(rb"content-length: (\d+)", data.split(b"\r\n\r\n", 1)[0], re.IGNORECASE)
    return int(match.group(1)) if match else 0


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_without_a_key_no_body_is_read_kept_in_memory_or_spooled(guarded_api: tuple[ApiProcess, Stack, Path]) -> None:
    api, stack, spool = guarded_api
    before = rss_mb(api.proc.pid)
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + b"\0" * (1 << 20)
    for i in range(30):  # each announces 300 parts of 1 MB; the api answers before reading them
        sock = open_upload(api, 300 * len(part), headers="Authorization: Bearer stt_not_a_key\r\n" if i % 2 else "")
        sock.sendall(part[:32768])
        status, body, waited = answer(sock)
        assert (status, body["error"]["code"]) == (401, "invalid_api_key" if i % 2 else "missing_api_key")  # type: ignore[index]
        assert waited < 5
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012 (and closes the connection rather than take the rest)
            for _ in range(300):
                sock.sendall(part)
        sock.close()
    assert rss_mb(api.proc.pid) - before < 100
    assert list(spool.iterdir()) == []
    assert stack.storage.list_keys() == []


def test_a_body_that_stalls_or_trickles_gets_408_and_nothing_is_kept(
    guarded_api: tuple[ApiProcess, Stack, Path],
) -> None:
    api, stack, spool = guarded_api
    key = new_key(stack, "acme")
    for trickle in (False, True):
        sock = open_upload(api, 10_000_000, headers=f"Authorization: {key['Authorization']}\r\n")
        sock.sendall(b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + CLIP[:4096])
        if trickle:  # a byte every half second: never idle for 2 s, far below 1 KB/s
            for _ in range(12):
                sock.sendall(b"\0")
                time.sleep(0.5)
        status, body, _ = answer(sock)
        assert (status, body["error"]["code"]) == (408, "request_timeout"), body  # type: ignore[index]
        assert closed_within(sock, 5)
        sock.close()
    assert stack.storage.list_keys() == []
    assert list(spool.iterdir()) == []


def test_connections_whose_headers_never_finish_are_closed(guarded_api: tuple[ApiProcess, Stack, Path]) -> None:
    api, _, _ = guarded_api
    silent = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    dripping = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    dripping.sendall(b"POST /v1/jobs HTTP/1.1\r\n")
    started = time.monotonic()
    for _ in range(4):  # a header line every 0.7 s: each alone is quick, together they never end
        time.sleep(0.7)
        with contextlib.suppress(OSError):
            dripping.sendall(b"X-Slow: 1\r\n")
    assert closed_within(silent, 3)
    assert closed_within(dripping, 3)
    assert time.monotonic() - started < 6
    with httpx.Client(base_url=api.url, timeout=10) as client:  # a keep-alive client is served throughout
        assert client.get("/health").status_code == 200
        assert client.get("/health").status_code == 200


# --- Zip bombs, against the api in its own process: refused from their declarations, memory bounded.


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zeros_member(size: int) -> bytes:
    """One member of `size` zero bytes, written in pieces so the test never holds it whole."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("silence.wav", "w", force_zip64=True) as out:
        for _ in range(size // (1 << 20)):
            out.write(bytes(1 << 20))
    return buf.getvalue()


def lying_about_its_size() -> bytes:
    """A real clip whose central directory declares 1000 bytes: extraction stops there and the CRC fails."""
    data = bytearray(zip_bytes({"clip.wav": CLIP}))
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    return bytes(data)


def many_empty_entries(count: int) -> bytes:
    return zip_bytes({f"{i}.wav": b"" for i in range(count)}, zipfile.ZIP_STORED)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_zip_bombs_are_refused_from_their_declarations_with_the_api_memory_bounded(
    guarded_api: tuple[ApiProcess, Stack, Path],
) -> None:
    api, stack, spool = guarded_api
    key = new_key(stack, "acme")
    thousand_megabytes = zip_bytes({f"{i:04d}.wav": bytes(1 << 20) for i in range(1000)})
    one_gigabyte = zeros_member(1 << 30)
    assert len(thousand_megabytes) < 2 << 20
    assert len(one_gigabyte) < 2 << 20
    with httpx.Client(base_url=api.url, timeout=120) as client:
        r = client.post("/v1/batches", files={"archive": ("bomb.zip", one_gigabyte)})
        assert r.status_code == 401  # before authentication: refused without reading it
        client.get("/health")
        before = peak_rss_mb(api.proc.pid)

        def post(archive: bytes) -> httpx.Response:
            return client.post("/v1/batches", files={"archive": ("bomb.zip", archive)}, headers=key)

        with ThreadPoolExecutor(3) as pool:  # three at once
            answers = list(pool.map(post, [thousand_megabytes, thousand_megabytes, one_gigabyte]))
        for r in answers:
            assert r.status_code == 202, r.text
            codes = {item["error"]["code"] for item in r.json()["items"]}
            assert codes == {"compression_ratio_too_high"}, codes
        assert len(answers[0].json()["items"]) == 1000
        assert peak_rss_mb(api.proc.pid) - before < 100

        r = post(many_empty_entries(20_000))  # the count is read before zipfile parses the directory
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_many_files")
        r = post(zip_bytes({"clip.bz2.wav": CLIP}, zipfile.ZIP_BZIP2))
        assert r.json()["items"][0]["error"]["code"] == "unsupported_compression"
        r = post(lying_about_its_size())
        assert r.json()["items"][0]["error"]["code"] == "corrupt_archive_member"
        r = post(zip_bytes({"../../escape.wav": CLIP, "/etc/abs.wav": CLIP, "ok/clip.wav": CLIP, ".hidden.wav": CLIP}))
        items = [(i["filename"], i["status"], (i["error"] or {}).get("code")) for i in r.json()["items"]]
        assert items == [
            ("escape.wav", "failed", "unsafe_archive_path"),
            ("abs.wav", "failed", "unsafe_archive_path"),
            ("ok/clip.wav", "queued", None),
        ]
    assert list(spool.iterdir()) == []  # every extracted member's temporary file is gone
    assert len(stack.storage.list_keys()) == 1


# --- Requests that wait for their transcription (POST /v1/audio/transcriptions) against a stalled queue.


def test_waiting_transcriptions_hold_no_thread_and_each_tenant_may_have_only_so_many(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'stt.db'}"
    upgrade(url)
    waiting = 45  # more than AnyIO's 40 worker threads, which sync waits used to hold
    stack = make_stack(
        url, redis_server.url, tmp_path, auth_enabled=True, openai_wait_seconds=8.0, openai_max_waiting=waiting
    )
    patient, other = new_key(stack, "patient"), new_key(stack, "other")
    server = ThreadedServer(create_app(stack.settings))  # no worker: every job stays queued
    try:
        with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=100)) as client:

            def transcribe() -> httpx.Response:
                return client.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("a.wav", CLIP)},
                    data={"model": "whisper-1"},
                    headers=patient,
                )

            with ThreadPoolExecutor(waiting) as pool:
                answers = [pool.submit(transcribe) for _ in range(waiting)]
                wait_for(lambda: _rows(stack)[0] == waiting, 30, "every transcription to be queued")
                started = time.monotonic()
                assert client.get("/v1/jobs", headers=other).status_code == 200
                assert client.get("/health").status_code == 200
                assert time.monotonic() - started < 2
                refused = transcribe()
                assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_waiting_requests")
                assert refused.headers["retry-after"] == "5"
                codes = {f.result().json()["error"]["code"] for f in answers}
            assert codes == {"transcription_timeout"}
            assert _rows(stack)[0] == waiting  # the refused one stored nothing
    finally:
        server.stop()


# --- The audio played back by range, and the web page's files

HOSTILE_RANGES = {
    "a 5,000-digit end": "bytes=0-" + "9" * 5000,
    "5,000 ranges": "bytes=" + ",".join(f"{i}-{i}" for i in range(5000)),
    "3,000 dashes": "bytes=" + "-" * 3000,
    "another unit": "lines=0-10",
    "no ranges": "bytes=,,,,",
}


@pytest.fixture
def keyed_stack(redis_server: RedisServer, tmp_path: Path) -> Stack:
    """A stack with keys on, its own SQLite: what a client without a key meets first."""
    return make_stack(migrated_sqlite(tmp_path), redis_server.url, tmp_path, auth_enabled=True)


def test_hostile_ranges_need_a_key_first_and_then_get_a_code_or_the_whole_file(keyed_stack: Stack) -> None:
    stack = keyed_stack
    with TestClient(create_app(stack.settings)) as client:
        key = new_key(stack, "acme")
        r = client.post("/v1/jobs", files={"file": ("clip01.wav", CLIP)}, headers=key)
        assert r.status_code == 202, r.text
        audio = f"/v1/jobs/{r.json()['id']}/audio"
        for name, header in HOSTILE_RANGES.items():
            before = client.get(audio, headers={"Range": header})
            assert (before.status_code, before.json()["error"]["code"]) == (401, "missing_api_key"), name
            started = time.perf_counter()
            after = client.get(audio, headers={**key, "Range": header})
            assert time.perf_counter() - started < 2, name
            if after.status_code == 200:  # past 100 ranges a client gets the whole file, once
                assert after.content == CLIP, name
            else:
                assert (after.status_code, after.json()["error"]["code"]) == (400, "invalid_range"), name


HOSTILE_FORMAT_TEXT = {
    "not a boolean": "maybe",
    "a number": "2",
    "100 kB": "t" * 100_000,
    "JSON object": '{"format_text": true}',
}


def test_hostile_format_text_needs_a_key_first_then_gets_a_code_and_makes_nothing(keyed_stack: Stack) -> None:
    stack = keyed_stack
    with TestClient(create_app(stack.settings)) as client:
        key = new_key(stack, "acme")
        for name, value in HOSTILE_FORMAT_TEXT.items():
            for path, files in (("/v1/jobs", {"file": ("a.wav", CLIP)}), ("/v1/batches", {"files": ("a.wav", CLIP)})):
                before = client.post(path, files=files, data={"format_text": value})
                assert (before.status_code, before.json()["error"]["code"]) == (401, "missing_api_key"), name
                started = time.perf_counter()
                after = client.post(path, files=files, data={"format_text": value}, headers=key)
                assert time.perf_counter() - started < 2, name
                assert after.status_code in (400, 422), (name, after.text)
                assert after.json()["error"]["code"] in ("validation_error", "field_too_large"), (name, after.text)
        body = {"audio_url": "https://example.com/a.wav", "format_text": "sometimes"}
        r = client.post("/v1/jobs", json=body, headers=key)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), r.text
    assert _rows(stack) == (0, 0)
    assert stack.storage.list_keys() == []


@pytest.mark.parametrize(
    "path",
    ["/web/%2e%2e/web.py", "/web/..%2fweb.py", "/web/%2e%2e/%2e%2e/pyproject.toml", "/web//etc/passwd", "/web/"],
)
def test_the_page_serves_nothing_outside_its_folder(keyed_stack: Stack, path: str) -> None:
    with TestClient(create_app(keyed_stack.settings)) as client:
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "mount_page" not in r.text
        assert "[project]" not in r.text
