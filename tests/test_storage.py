"""The audio store: the same contract from a local directory and from an S3-compatible server (moto's,
on a free port), then the service run as hosts that share nothing but the database, Redis and a bucket."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.main import create_app
from client.api import ApiError, SttClient
from stt_common.errors import AudioCorrupt, AudioMissing, ErrorCode, StorageUnavailable
from stt_common.migrate import upgrade
from stt_common.settings import REPO_ROOT, Settings
from stt_common.storage import LocalStorage, S3Storage, Storage, audio_key, open_storage
from tests.services import CeleryWorker, RedisServer, S3Server, ThreadedServer, wait_for
from tests.stack import SAMPLES, Stack, job_statuses, make_stack

MB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    s3: S3Server = request.getfixturevalue("s3")
    return S3Storage(s3.bucket, "tenant-audio")


class FailingSource(io.BytesIO):
    """Fails once a read passes `fail_after` bytes in the pass that writes: the local store's only pass
    through the source, the S3 store's second (its first, to the end, hashes)."""

    def __init__(self, data: bytes, fail_after: int, failing_pass: int) -> None:
        super().__init__(data)
        self.fail_after, self.failing_pass, self.ends_seen = fail_after, failing_pass, 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk:
            self.ends_seen += 1
        elif self.ends_seen == self.failing_pass - 1 and self.tell() > self.fail_after:
            raise OSError("the client went away")
        return chunk


def test_open_storage_reads_the_url_or_the_directory(tmp_path: Path) -> None:
    local = open_storage(Settings(_env_file=None, storage_dir=tmp_path / "a"))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "a").resolve()
    named = open_storage(Settings(_env_file=None, storage_url=str(tmp_path / "b")))
    assert isinstance(named, LocalStorage)
    assert named.root == (tmp_path / "b").resolve()
    bucket = open_storage(Settings(_env_file=None, storage_url="s3://stt-audio/some/prefix/"))
    assert isinstance(bucket, S3Storage)
    assert (bucket.bucket, bucket.prefix) == ("stt-audio", "some/prefix/")
    for bad in ("s3:///no-bucket", "gs://elsewhere/audio"):
        with pytest.raises(ValueError, match="STT_STORAGE_URL"):
            open_storage(Settings(_env_file=None, storage_url=bad))


def test_an_object_is_stored_fetched_checked_and_deleted(storage: Storage) -> None:
    data = os.urandom(300_000)
    key = audio_key("0f9c2a3e-6a2b-4a4e-9a55-2b3c4d5e6f70")
    stored = storage.put(key, io.BytesIO(data))
    assert (stored.key, stored.bytes) == (key, len(data))
    assert storage.list_keys() == [key]
    with storage.fetch(key, stored.sha256) as path:
        assert path.read_bytes() == data
        if isinstance(storage, S3Storage):  # a private copy: only this user may read it
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    if isinstance(storage, S3Storage):
        assert not path.exists()  # removed after the block
    storage.check()
    storage.delete(key)
    storage.delete(key)  # deleting twice is fine
    assert storage.list_keys() == []
    with pytest.raises(AudioMissing), storage.fetch(key, stored.sha256):
        pass


def test_an_altered_object_fails_its_check(storage: Storage) -> None:
    key = audio_key("1f9c2a3e-6a2b-4a4e-9a55-2b3c4d5e6f70")
    stored = storage.put(key, io.BytesIO(b"original audio bytes"))
    if isinstance(storage, LocalStorage):
        storage.path(key).write_bytes(b"tampered audio bytes")
    else:
        assert isinstance(storage, S3Storage)
        storage.client.put_object(Bucket=storage.bucket, Key=storage.prefix + key, Body=b"tampered audio bytes")
    with pytest.raises(AudioCorrupt, match="sha256"), storage.fetch(key, stored.sha256):
        pass


def test_a_failed_write_leaves_no_object(storage: Storage) -> None:
    data = os.urandom(20 * MB)  # past the S3 multipart threshold: three parts
    source = FailingSource(data, fail_after=12 * MB, failing_pass=2 if isinstance(storage, S3Storage) else 1)
    with pytest.raises(OSError, match="went away"):
        storage.put(audio_key("2f9c2a3e-6a2b-4a4e-9a55-2b3c4d5e6f70"), source)
    assert storage.list_keys() == []
    if isinstance(storage, LocalStorage):
        assert [p for p in storage.root.rglob("*") if p.is_file()] == []  # no .incoming- file either
    else:
        assert isinstance(storage, S3Storage)
        pending = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
        assert pending == []  # the multipart upload was aborted, not left to bill


def test_an_unreachable_store_is_transient_and_comes_back(s3: S3Server) -> None:
    storage = S3Storage(s3.bucket)
    stored = storage.put("audio/ab/kept", io.BytesIO(b"kept while the store was up"))
    s3.proxy.cut()
    try:
        for action in (
            lambda: storage.put("audio/ab/new", io.BytesIO(b"x")),
            lambda: storage.fetch("audio/ab/kept", stored.sha256).__enter__(),
            lambda: storage.delete("audio/ab/kept"),
            storage.check,
        ):
            with pytest.raises(StorageUnavailable) as raised:
                action()
            assert raised.value.code == ErrorCode.storage_unavailable
            assert raised.value.http_status == 503
    finally:
        s3.proxy.restore()
    with storage.fetch("audio/ab/kept", stored.sha256) as path:
        assert path.read_bytes() == b"kept while the store was up"
    assert storage.list_keys() == ["audio/ab/kept"]
    with pytest.raises(StorageUnavailable, match="refused"):
        S3Storage("no-such-bucket").check()


UPLOAD_IN_A_FRESH_PROCESS = """
import json, resource, sys
from stt_common.storage import S3Storage
storage = S3Storage(sys.argv[2])
storage.check()  # every import and the client made: what follows is the upload itself
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fh:
    stored = storage.put("audio/la/large", fh)
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grew_mb": grew / 1024, "bytes": stored.bytes, "sha256": stored.sha256}))
"""


def test_a_large_upload_streams_in_bounded_memory(s3: S3Server, tmp_path: Path) -> None:
    """Parts are read and sent a few at a time: the uploading process's peak memory grows by far less than
    the file (measured in a fresh process, whose peak is its own)."""
    source = tmp_path / "large.bin"
    with source.open("wb") as fh:
        for _ in range(160):
            fh.write(os.urandom(MB))
    out = subprocess.run(
        [sys.executable, "-c", UPLOAD_IN_A_FRESH_PROCESS, str(source), s3.bucket],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        check=True,
    )
    measured = json.loads(out.stdout)
    assert measured["bytes"] == 160 * MB
    assert measured["grew_mb"] < 80, measured
    with S3Storage(s3.bucket).fetch("audio/la/large", measured["sha256"]) as path:
        assert path.stat().st_size == 160 * MB


# --- The service as a fleet: the api and two workers on "hosts" whose disks hold nothing of each other's.


def fleet_stack(redis: RedisServer, tmp_path: Path, **overrides: object) -> Stack:
    """SQLite (the store, not the database, is what these tests are about), the audio in the bucket."""
    database_url = f"sqlite:///{tmp_path / 'stt.db'}"
    upgrade(database_url)
    return make_stack(
        database_url,
        redis.url,
        tmp_path,
        storage_url="s3://stt-audio/fleet",
        storage_dir=tmp_path / "api-host",  # never used: the url wins
        **overrides,
    )


def on_host(stack: Stack, folder: Path) -> dict[str, str]:
    """A worker's settings on its own host: a storage directory no one else sees (and it must not need)."""
    return {**stack.env, "STT_STORAGE_DIR": str(folder)}


def local_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def fleet(redis_server: RedisServer, s3: S3Server, tmp_path: Path) -> Iterator[tuple[Stack, str, S3Server]]:
    from redis import Redis

    Redis.from_url(redis_server.url).flushall()
    stack = fleet_stack(redis_server, tmp_path)
    workers = [
        CeleryWorker(on_host(stack, tmp_path / f"worker-{n}-host"), tmp_path / f"worker-{n}.log").start()
        for n in (1, 2)
    ]
    server = ThreadedServer(create_app(stack.settings))
    try:
        yield stack, server.url, s3
    finally:
        server.stop()
        for worker in workers:
            worker.stop()


@pytest.mark.slow
def test_jobs_and_a_batch_run_on_hosts_that_share_only_the_bucket(
    fleet: tuple[Stack, str, S3Server], tmp_path: Path
) -> None:
    stack, url, s3 = fleet
    clips = sorted(SAMPLES.glob("clip*"))
    with SttClient(url) as stt:
        wait_for(lambda: stt.http.get("/ready").status_code == 200, 60, "the workers' models to be warm")
        assert stt.http.get("/ready").json()["checks"]["storage"] == "ok"
        ids = [stt.submit(clips[i % len(clips)])["id"] for i in range(14)]
        batch = stt.submit_batch([clips[i % len(clips)] for i in range(6)])
        ids += [item["job_id"] for item in batch["items"]]
        jobs = [stt.wait(job_id, timeout=120) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 20
        assert all(j["result"]["text"] for j in jobs)
        assert s3.object_keys() == sorted(f"fleet/{audio_key(j)}" for j in ids)
        stt.delete(ids[0])
        assert f"fleet/{audio_key(ids[0])}" not in s3.object_keys()
    hosts = [tmp_path / "api-host", tmp_path / "worker-1-host", tmp_path / "worker-2-host"]
    assert local_files(*hosts) == []  # the audio never touched a host's disk store
    assert len(job_statuses(stack)) == 20


@pytest.mark.slow
def test_a_store_that_goes_down_holds_jobs_back_and_loses_none(
    redis_server: RedisServer, s3: S3Server, tmp_path: Path
) -> None:
    from redis import Redis

    Redis.from_url(redis_server.url).flushall()
    stack = fleet_stack(redis_server, tmp_path, task_retry_backoff_max=1, task_max_retries=30)
    server = ThreadedServer(create_app(stack.settings))
    worker = CeleryWorker(on_host(stack, tmp_path / "worker-host"), tmp_path / "worker.log")
    try:
        with SttClient(server.url) as stt:
            ids = [stt.submit(SAMPLES / "clip01.wav")["id"] for _ in range(3)]  # stored while the store is up
            s3.proxy.cut()
            worker.start()  # it takes the jobs and cannot fetch their audio: each is retried
            wait_for(lambda: worker.log().count("transient failure") >= 2, 60, "the worker to retry")
            with pytest.raises(ApiError) as refused:
                stt.submit(SAMPLES / "clip02.flac")
            assert (refused.value.status, refused.value.code) == (503, "storage_unavailable")
            ready = stt.http.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["storage"].startswith("error")
            assert set(job_statuses(stack).values()) <= {"queued", "processing"}
            s3.proxy.restore()
            jobs = [stt.wait(job_id, timeout=120) for job_id in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 3
        assert sorted(job_statuses(stack)) == sorted(ids)  # the refused upload left no job
        assert s3.object_keys() == sorted(f"fleet/{audio_key(j)}" for j in ids)  # ... and no object
    finally:
        server.stop()
        worker.stop()


def test_the_migration_step_waits_for_the_store_and_can_create_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STT_DATABASE_URL": f"sqlite:///{tmp_path / 'stt.db'}",
        "STT_STORAGE_URL": "s3://made-by-migrate/audio",
    }
    run = [sys.executable, "-m", "stt_common.migrate", "--wait", "3"]
    refused = subprocess.run(run, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0  # no such bucket, and not asked to create one
    assert "audio store did not answer" in refused.stderr
    made = subprocess.run(
        [*run, "--create-bucket"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert "made-by-migrate" in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}
