"""The fault suite: real processes (uvicorn, Celery workers, the webhooks worker with its reaper, a
private redis-server and a private PostgreSQL server) broken on purpose. After each fault every job
the service accepted ends in one terminal state with one result, one webhook event delivered (same id
on every attempt), and nothing orphaned in storage. docs/RELIABILITY.md describes the guarantees.
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import select

from stt_common.migrate import upgrade
from stt_common.models import Job, JobStatus, WebhookDelivery
from tests.services import (
    ApiProcess,
    CeleryWorker,
    PostgresServer,
    RedisServer,
    WebhookReceiver,
    free_port,
    wait_for,
)
from tests.stack import SAMPLES, SLOW, Stack, fault_stack, job_statuses, service, sqlite_stack, with_faults

pytestmark = pytest.mark.slow
CLIP = SAMPLES / "clip01.wav"


def wait_status(stack: Stack, status: str, timeout: float = 30) -> str:
    def one() -> str | None:
        return next((i for i, st in job_statuses(stack).items() if st == status), None)

    return wait_for(one, timeout, f"a job to be {status}", interval=0.02)


def wait_all_delivered(stack: Stack, ids: list[str], timeout: float = 90) -> None:
    def done() -> bool:
        with stack.session_factory() as s:
            statuses = [j.status for j in s.scalars(select(Job))]
            delivered = [d.status for d in s.scalars(select(WebhookDelivery))]
        return (
            len(statuses) == len(ids)
            and all(JobStatus(st).is_terminal for st in statuses)
            and len(delivered) == len(ids)
            and all(st == "delivered" for st in delivered)
        )

    wait_for(done, timeout, "every job finished and its webhook delivered", interval=0.2)


def assert_each_job_finished_once(
    stack: Stack, ids: list[str], receiver: WebhookReceiver, logs: list[str]
) -> list[Job]:
    """The invariants of docs/RELIABILITY.md, checked in the database, the receiver, the worker logs
    and storage."""
    with stack.session_factory() as s:
        found = list(s.scalars(select(Job)))
        deliveries = list(s.scalars(select(WebhookDelivery)))
    assert sorted(str(j.id) for j in found) == sorted(ids), "a job was lost, or one appeared"
    for job in found:
        assert job.status == "succeeded", (job.id, job.status, job.error_code, job.error_message)
        assert job.result is not None
        assert job.text is not None
        assert job.lease_expires_at is None
    # One run stored a result per job: no duplicate completion in any worker's log.
    completions = collections.Counter(
        line.split("job ", 1)[1].split(":", 1)[0]
        for log in logs
        for line in log.splitlines()
        if ": succeeded in " in line
    )
    assert {i: completions[i] for i in ids} == dict.fromkeys(ids, 1), completions
    # One event per job, delivered; every request for it carried the same webhook-id.
    assert sorted(str(d.job_id) for d in deliveries) == sorted(ids)
    assert all(d.status == "delivered" and d.event_type == "job.succeeded" for d in deliveries)
    ids_by_job = collections.defaultdict(set)
    for request in receiver.received:
        ids_by_job[json.loads(request.body)["data"]["id"]].add(request.headers["webhook-id"])
    assert {j: len(v) for j, v in ids_by_job.items()} == dict.fromkeys(ids, 1)
    # Storage holds exactly the audio of the jobs: nothing orphaned, no half-written upload.
    assert stack.storage.list_keys() == sorted(j.audio_key for j in found if j.audio_key)
    return found


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings for the audio store: the local directory, or a bucket on a private S3 server."""
    if request.param == "local":
        return {}
    request.getfixturevalue("s3")
    return {"storage_url": "s3://stt-audio/faults"}


def test_a_worker_sigkilled_mid_job_loses_nothing_and_a_receiver_down_then_up_gets_every_event(
    own_redis: RedisServer, tmp_path: Path, store: dict[str, object]
) -> None:
    stack = sqlite_stack(own_redis, tmp_path, **store)
    hook_port = free_port()  # nothing listens there yet: deliveries fail to connect and are retried
    doomed = CeleryWorker(with_faults(stack, SLOW.format(60)), tmp_path / "doomed.log").start()
    survivor = CeleryWorker(stack.env, tmp_path / "survivor.log")
    receiver = None
    try:
        with service(stack, tmp_path, survivor, doomed) as (stt, housekeeping):
            ids = [stt.submit(CLIP, webhook_url=f"http://127.0.0.1:{hook_port}/hook")["id"] for _ in range(3)]
            interrupted = wait_status(stack, "processing")
            doomed.kill()  # SIGKILL, main process and pool child: no cleanup, no ack
            survivor.start()
            receiver = WebhookReceiver(port=hook_port)
            wait_all_delivered(stack, ids)
            assert "reaper: re-enqueued" in housekeeping.log()
        jobs = {
            str(j.id): j for j in assert_each_job_finished_once(stack, ids, receiver, [doomed.log(), survivor.log()])
        }
        assert jobs[interrupted].attempts == 2  # reclaimed once its lease ran out
        assert all(j.attempts == 1 for i, j in jobs.items() if i != interrupted)
    finally:
        if receiver:
            receiver.stop()


def test_redis_restarted_empty_with_jobs_queued_and_running_loses_nothing(
    own_redis: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    stack = sqlite_stack(own_redis, tmp_path)
    worker = CeleryWorker(with_faults(stack, SLOW.format(3)), tmp_path / "worker.log").start()
    with service(stack, tmp_path, worker) as (stt, housekeeping):
        ids = [stt.submit(CLIP, webhook_url=receiver.url())["id"] for _ in range(4)]
        wait_status(stack, "processing")
        assert Redis.from_url(own_redis.url).llen("transcribe") >= 2  # the others wait in Redis
        own_redis.stop()
        own_redis.start()  # empty: the waiting messages are gone
        wait_all_delivered(stack, ids)
        assert "reaper: re-enqueued" in housekeeping.log()
    found = assert_each_job_finished_once(stack, ids, receiver, [worker.log()])
    assert all(j.attempts == 1 for j in found)  # re-sent, not re-run


def test_a_job_outliving_the_visibility_timeout_runs_once(
    own_redis: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    stack = sqlite_stack(own_redis, tmp_path, broker_visibility_timeout=10, broker_restore_interval=1)
    slow = CeleryWorker(with_faults(stack, SLOW.format(16)), tmp_path / "slow.log").start()
    other = CeleryWorker(stack.env, tmp_path / "other.log")
    with service(stack, tmp_path, other, slow) as (stt, _):
        ids = [stt.submit(CLIP, webhook_url=receiver.url())["id"]]
        wait_status(stack, "processing")
        other.start()  # free to take the message Redis hands out again after 10 s
        wait_for(lambda: "not claimable" in other.log(), 30, "the restored message to reach the other worker")
        wait_all_delivered(stack, ids)
    (job,) = assert_each_job_finished_once(stack, ids, receiver, [slow.log(), other.log()])
    assert job.attempts == 1


def test_postgres_stopped_mid_run_answers_503_then_finishes_every_job(
    own_redis: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    try:
        postgres = PostgresServer()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a private PostgreSQL server: {exc}")
    try:
        upgrade(postgres.url)
        stack = fault_stack(postgres.url, own_redis.url, tmp_path)
        worker = CeleryWorker(with_faults(stack, SLOW.format(2)), tmp_path / "worker.log").start()
        with service(stack, tmp_path, worker) as (stt, _):
            ids = [stt.submit(CLIP, webhook_url=receiver.url())["id"] for _ in range(3)]
            running = wait_status(stack, "processing")
            postgres.stop()  # immediate: connections cut mid-transaction
            polled = stt.http.get(f"/v1/jobs/{running}")
            assert polled.status_code == 503
            assert polled.headers["retry-after"] == "5"
            assert polled.json()["error"]["code"] == "database_unavailable"
            refused = stt.http.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())})
            assert refused.status_code == 503
            assert "retry-after" in refused.headers
            time.sleep(3)  # the worker's result write fails meanwhile
            postgres.start()
            wait_all_delivered(stack, ids)
        assert_each_job_finished_once(stack, ids, receiver, [worker.log()])
        assert "; retry 1 in " in worker.log()  # the worker rode the outage out with retries
    finally:
        postgres.destroy()


def test_an_api_that_dies_between_commit_and_publish_loses_no_job(
    own_redis: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    stack = sqlite_stack(own_redis, tmp_path)
    api_process = ApiProcess(with_faults(stack, "api.after_commit=exit"), tmp_path / "api.log")
    with httpx.Client(base_url=api_process.url, timeout=30) as api, pytest.raises(httpx.TransportError):
        api.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, data={"webhook_url": receiver.url()})
    api_process.proc.wait(10)
    assert list(job_statuses(stack).values()) == ["queued"]  # committed, never published
    assert Redis.from_url(own_redis.url).llen("transcribe") == 0
    worker = CeleryWorker(stack.env, tmp_path / "worker.log").start()
    with service(stack, tmp_path, worker) as (_, housekeeping):
        ids = list(job_statuses(stack))
        wait_all_delivered(stack, ids)
        assert "reaper: re-enqueued 1 job(s)" in housekeeping.log()
    (job,) = assert_each_job_finished_once(stack, ids, receiver, [worker.log()])
    assert job.attempts == 1
    assert uuid.UUID(ids[0]) == job.id


def test_a_job_that_kills_its_worker_every_time_fails_with_worker_lost(
    own_redis: RedisServer, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    stack = sqlite_stack(own_redis, tmp_path)
    # Every attempt ends the pool process as an out-of-memory kill would; the worker's main process
    # starts a new one each time.
    worker = CeleryWorker(with_faults(stack, "worker.before_complete=exit"), tmp_path / "worker.log").start()
    with service(stack, tmp_path, worker) as (stt, _):
        job_id = stt.submit(CLIP, webhook_url=receiver.url())["id"]
        wait_all_delivered(stack, [job_id], timeout=120)
        body = stt.job(job_id)
        assert worker.proc is not None
        assert worker.proc.poll() is None
        assert 'stt_jobs_finished_total{code="worker_lost",status="failed"} 1.0' in stt.http.get("/metrics").text
    assert (body["status"], body["error"]["code"], body["attempts"]) == ("failed", "worker_lost", 3)
    (event,) = {json.loads(r.body)["type"] for r in receiver.received}
    assert event == "job.failed"
    assert stack.storage.list_keys() == [f"audio/{job_id[:2]}/{job_id}"]
