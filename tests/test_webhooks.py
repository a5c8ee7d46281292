"""Webhooks through real processes: uvicorn, a Celery transcription worker, the webhooks worker (with its
periodic sweep) and real local HTTP receivers; every delivery verified with the `standardwebhooks`
package."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from api.main import create_app
from stt_common import events, jobs
from stt_common.db import make_engine, make_session_factory, session_scope
from stt_common.errors import InvalidWebhookUrl
from stt_common.models import Job, JobStatus, WebhookAttempt, WebhookDelivery
from stt_common.transcript import Transcript
from stt_common.webhooks import AddressRefused, check_url, is_public, public_address
from tests.audio_files import silence_opus_webm
from tests.services import (
    DrippingReceiver,
    Reply,
    ThreadedServer,
    WebhookReceiver,
    env_for,
    free_port,
    wait_for,
)
from tests.stack import SAMPLES, Stack
from worker.webhook_sender import SenderContext, deliver

pytestmark = pytest.mark.slow
CLIP = SAMPLES / "clip01.wav"


def submit(api: httpx.Client, url: str, path: Path = CLIP, metadata: dict[str, str] | None = None) -> str:
    data = {"webhook_url": url}
    if metadata:
        data["metadata"] = json.dumps(metadata)
    r = api.post("/v1/jobs", files={"file": (path.name, path.read_bytes())}, data=data)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def service_secret(stack: Stack) -> str:
    """Read the way an operator does: `python -m api.admin webhook-secret`."""
    out = subprocess.run(
        [sys.executable, "-m", "api.admin", "webhook-secret"],
        env=env_for(stack.env),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def verified(secret: str, receiver: WebhookReceiver) -> list[dict]:  # type: ignore[type-arg]
    """Every request the receiver got, checked by the standardwebhooks package; raises if any fails."""
    hook = Webhook(secret)
    return [hook.verify(r.body, r.headers) | {"_id": r.headers["webhook-id"]} for r in receiver.received]


def log(api: httpx.Client, job_id: str) -> list[dict]:  # type: ignore[type-arg]
    r = api.get(f"/v1/jobs/{job_id}/webhooks")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def settled(api: httpx.Client, job_id: str, status: str) -> dict:  # type: ignore[type-arg]
    def check() -> dict | None:  # type: ignore[type-arg]
        entries = log(api, job_id)
        return entries[0] if entries and entries[0]["status"] == status else None

    return wait_for(check, 60, f"job {job_id}'s webhook to be {status}", interval=0.1)


def test_deliveries_are_signed_retried_recorded_and_redelivered(
    hook_stack: Stack, running: httpx.Client, tmp_path: Path
) -> None:
    api = running
    flaky = WebhookReceiver([Reply(500), Reply(500), Reply(200)])
    gone = WebhookReceiver([Reply(410)])
    redirect = WebhookReceiver([Reply(302, headers={"location": "http://example.com/"})])
    slow = WebhookReceiver([Reply(200, delay_s=2.5)])  # longer than the 1 s time limit: a timeout, then 200
    failed_receiver = WebhookReceiver()
    down_port = free_port()  # nothing listens there yet
    bomb = tmp_path / "bomb.webm"
    bomb.write_bytes(silence_opus_webm(500))  # fails in the worker: audio_too_long
    later: WebhookReceiver | None = None
    try:
        flaky_job = submit(api, flaky.url(), metadata={"ticket": "T-1"})
        gone_job = submit(api, gone.url())
        redirect_job = submit(api, redirect.url())
        slow_job = submit(api, slow.url())
        failed_job = submit(api, failed_receiver.url(), path=bomb)
        down_job = submit(api, f"http://127.0.0.1:{down_port}/hook")

        wait_for(
            lambda: any(a["error"] == "connection_error" for e in log(api, down_job) for a in e["attempts"]),
            60,
            "a connection error while the receiver is down",
        )
        later = WebhookReceiver(port=down_port)  # the receiver comes up: a retry reaches it

        entry = settled(api, flaky_job, "delivered")
        assert [a["status_code"] for a in entry["attempts"]] == [500, 500, 200]
        assert [a["number"] for a in entry["attempts"]] == [1, 2, 3]
        assert all(a["latency_ms"] is not None for a in entry["attempts"])
        secret = service_secret(hook_stack)
        assert secret.startswith("whsec_")
        events_seen = verified(secret, flaky)  # all three requests carry valid signatures
        assert len(events_seen) == 3
        assert len({e["_id"] for e in events_seen}) == 1
        assert events_seen[0]["_id"] == entry["id"]
        event = events_seen[0]
        assert event["type"] == "job.succeeded"
        assert event["data"]["id"] == flaky_job
        assert event["data"]["status"] == "succeeded"
        assert event["data"]["result"]["text"]
        assert event["data"]["metadata"] == {"ticket": "T-1"}
        listed = {j["id"]: j for j in api.get("/v1/jobs", params={"limit": 100}).json()["data"]}
        assert event["data"] == listed[flaky_job]  # the event carries the job as the API lists it
        assert api.get(f"/v1/jobs/{flaky_job}").json()["metadata"] == {"ticket": "T-1"}

        entry = settled(api, gone_job, "disabled")
        assert [a["status_code"] for a in entry["attempts"]] == [410]

        entry = settled(api, redirect_job, "failed")
        assert [(a["status_code"], a["error"]) for a in entry["attempts"]] == [(302, "redirect_refused")]

        entry = settled(api, slow_job, "delivered")
        assert [a["error"] for a in entry["attempts"]] == ["timeout", None]
        assert len(verified(secret, slow)) == 2

        entry = settled(api, failed_job, "delivered")
        (failure,) = verified(secret, failed_receiver)
        assert failure["type"] == "job.failed"
        assert failure["data"]["error"]["code"] == "audio_too_long"

        entry = settled(api, down_job, "delivered")
        errors = [a["error"] for a in entry["attempts"]]
        assert errors[-1] is None
        assert set(errors[:-1]) == {"connection_error"}
        assert len(verified(secret, later)) == 1

        # Nothing more arrived where delivery ended (seconds after, with retries 0.3 s apart): no retry
        # after 410, and the redirect was not followed.
        assert gone.count() == 1
        assert redirect.count() == 1

        # Redelivery: same id and body, a new attempt in the log.
        r = api.post(f"/v1/jobs/{flaky_job}/webhooks/redeliver")
        assert r.status_code == 202, r.text
        wait_for(lambda: flaky.count() == 4, 30, "the redelivery")
        again = verified(secret, flaky)[-1]
        assert again["_id"] == events_seen[0]["_id"]
        assert again["data"] == events_seen[0]["data"]
        entry = settled(api, flaky_job, "delivered")
        assert len(entry["attempts"]) == 4
        assert flaky.received[-1].body == flaky.received[0].body
        # No event yet for a job without a webhook: redelivery says so with a code.
        r = api.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())})
        r = api.post(f"/v1/jobs/{r.json()['id']}/webhooks/redeliver")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "no_webhook_event"
    finally:
        for receiver in (flaky, gone, redirect, slow, failed_receiver, later):
            if receiver is not None:
                receiver.stop()


def test_invalid_webhook_urls_and_metadata_are_refused_at_the_door(hook_stack: Stack) -> None:
    server = ThreadedServer(create_app(hook_stack.settings))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            for url in (
                "ftp://example.com/x",
                "http://",
                "http://user:pw@example.com/",
                "example.com/hook",
                "http://example.com:99999/",
                "https://example.com/" + "a" * 2100,
                "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/hook",
                "http://[::1]:8080/",
                "http://[64:ff9b::a9fe:a9fe]/",
            ):  # addresses refused at the door, not only when sending
                r = api.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, data={"webhook_url": url})
                assert r.status_code == 422, (url, r.text)
                assert r.json()["error"]["code"] in ("invalid_webhook_url", "validation_error")
            for metadata in ("[1, 2]", "{not json", json.dumps({"k": "v" * 5000})):
                r = api.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, data={"metadata": metadata})
                assert r.status_code in (400, 422), r.text
                assert r.json()["error"]["code"] in ("invalid_metadata", "validation_error")
        with session_scope(hook_stack.session_factory) as session:
            assert session.query(Job).count() == 0  # nothing was accepted
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.100.100.200", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),
        ("2002:a9fe:a9fe::", False),
        ("ff02::1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::a00:1", False),
        ("64:ff9b:1:808:8:800::", False),
    ],
)
def test_ssrf_guard_classifies_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_ssrf_guard_checks_what_the_name_resolves_to() -> None:
    with pytest.raises(AddressRefused):
        public_address("localhost", 80, [])
    with pytest.raises(AddressRefused):
        public_address("127.0.0.1", 80, ["10.0.0.0/8"])
    assert str(public_address("127.0.0.1", 80, ["127.0.0.0/8"])) == "127.0.0.1"
    assert str(public_address("localhost", 80, ["localhost"])) in ("127.0.0.1", "::1")
    with pytest.raises(InvalidWebhookUrl, match="not a URL"):
        check_url("http://[::1")


def test_a_url_resolving_to_a_private_address_is_refused_when_sending(stack: Stack) -> None:
    """Allowlist off (the default): the receiver is on 127.0.0.1, given by address and by a name that
    resolves to it. Nothing reaches it; the attempt is recorded as refused and not retried."""
    receiver = WebhookReceiver()
    settings = stack.settings.model_copy(update={"webhook_allowed_hosts": []})
    context = SenderContext(settings, stack.session_factory)
    try:
        for url in (receiver.url(), f"http://localhost:{receiver.port}/hook"):
            with session_scope(stack.session_factory) as session:
                job = Job(
                    id=uuid.uuid4(), model="tr-espeak-small", audio_sha256="0" * 64, audio_bytes=1, webhook_url=url
                )
                session.add(job)
                session.flush()
                attempt = jobs.claim(session, job.id, 60, max_attempts=3)
                assert attempt is not None
                assert jobs.complete(session, job.id, attempt, Transcript(text="merhaba", duration_s=1.0), 0.1)
                (delivery_id,) = events.take_new(session)
            assert deliver(context, delivery_id) is None  # no retry
            with session_scope(stack.session_factory) as session:
                delivery = session.get(WebhookDelivery, delivery_id)
                assert delivery is not None
                assert delivery.status == "failed"
                (attempt_row,) = session.query(WebhookAttempt).filter_by(delivery_id=delivery_id).all()
                assert attempt_row.error == "address_refused"
                assert attempt_row.status_code is None
        assert receiver.count() == 0
    finally:
        receiver.stop()


def test_each_terminal_transition_writes_one_event_in_its_own_transaction(stack: Stack) -> None:
    """A duplicate completion (a redelivered task) writes nothing; a canceled job sends nothing; a
    rolled-back completion leaves no event behind."""
    with session_scope(stack.session_factory) as session:
        job = Job(
            id=uuid.uuid4(),
            model="tr-espeak-small",
            audio_sha256="0" * 64,
            audio_bytes=1,
            webhook_url="https://example.com/hook",
        )
        canceled = Job(
            id=uuid.uuid4(),
            model="tr-espeak-small",
            audio_sha256="0" * 64,
            audio_bytes=1,
            webhook_url="https://example.com/hook",
        )
        session.add_all([job, canceled])
    with stack.session_factory() as session:
        attempt = jobs.claim(session, job.id, 60, max_attempts=3)
        assert attempt is not None
        assert jobs.complete(session, job.id, attempt, Transcript(text="bir", duration_s=1.0), 0.1)
        session.rollback()  # e.g. the commit failed
    with session_scope(stack.session_factory) as session:
        assert session.query(WebhookDelivery).count() == 0
        assert session.get(Job, job.id).status == JobStatus.queued  # type: ignore[union-attr]
        attempt = jobs.claim(session, job.id, 60, max_attempts=3)
        assert attempt is not None
        assert jobs.complete(session, job.id, attempt, Transcript(text="bir", duration_s=1.0), 0.1)
        assert not jobs.complete(session, job.id, attempt, Transcript(text="iki", duration_s=1.0), 0.1)
        jobs.delete(session, canceled.id)
    with session_scope(stack.session_factory) as session:
        (delivery,) = session.query(WebhookDelivery).all()
        assert delivery.event_type == "job.succeeded"
        assert delivery.job_id == job.id
        assert json.loads(delivery.body)["data"]["result"]["text"] == "bir"


def test_deleting_a_job_cancels_its_pending_retries_and_erases_every_copy_of_the_transcript(
    hook_stack: Stack, running: httpx.Client
) -> None:
    api = running
    receiver = WebhookReceiver([Reply(503, headers={"retry-after": "2"})])  # then 200, if asked again
    delivered = WebhookReceiver()
    try:
        retrying = submit(api, receiver.url())
        finished = submit(api, delivered.url())
        settled(api, finished, "delivered")
        first = settled(api, retrying, "pending")
        assert len(first["attempts"]) == 1
        assert receiver.count() == 1
        for job_id in (retrying, finished):
            assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
        with session_scope(hook_stack.session_factory) as session:
            rows = {d.job_id: (d.status, d.body) for d in session.query(WebhookDelivery)}
        assert rows == {uuid.UUID(retrying): ("canceled", ""), uuid.UUID(finished): ("delivered", "")}
        # The retry was due 2 s (±20%) after the first attempt, and the sweep looks every 0.5 s.
        # Nothing signals "not sent", so wait out the time by which it would have been.
        time.sleep(3.5)
        assert receiver.count() == 1
    finally:
        receiver.stop()
        delivered.stop()


@pytest.mark.usefixtures("hook_stack")
def test_an_attempt_ends_at_its_deadline_however_slowly_the_receiver_drips(running: httpx.Client) -> None:
    """A byte every 0.2 s keeps every read under httpx's per-read timeout: only a deadline on the whole
    attempt (1 s here) ends it. No two attempts of the delivery are ever on the wire at once."""
    api = running
    receiver = DrippingReceiver(every_s=0.2)
    try:
        job_id = submit(api, receiver.url())

        def three_attempts() -> list[dict] | None:  # type: ignore[type-arg]
            entries = log(api, job_id)
            return entries[0]["attempts"] if entries and len(entries[0]["attempts"]) >= 3 else None

        attempts = wait_for(three_attempts, 60, "three attempts", interval=0.2)
        assert isinstance(attempts, list)
        assert {a["error"] for a in attempts} == {"timeout"}
        assert all(a["latency_ms"] < 1800 for a in attempts), attempts
        wait_for(lambda: len(receiver.connections) >= 3, 10, "the receiver to see the connections close")
        spans = sorted(receiver.connections)
        assert all(end - opened < 2.0 for opened, end in spans), spans
        assert all(later[0] >= earlier[1] - 0.05 for earlier, later in itertools.pairwise(spans)), spans
    finally:
        receiver.stop()


def test_events_leave_after_their_commit_and_never_after_a_rollback(stack: Stack) -> None:
    """The one place that publishes: the session factory's after-commit hook. A rolled-back transaction
    publishes nothing, a savepoint rolled back inside a committed one does not drop the outer events, and
    a publish that fails is logged, not raised (the sweep sends it later)."""
    published: list[uuid.UUID] = []
    events.publish_after_commit(stack.session_factory, published.extend)

    def finished_job(session: Session) -> uuid.UUID:
        job = Job(
            id=uuid.uuid4(),
            model="tr-espeak-small",
            audio_sha256="0" * 64,
            audio_bytes=1,
            webhook_url="https://example.com/hook",
        )
        session.add(job)
        session.flush()
        attempt = jobs.claim(session, job.id, 60, max_attempts=3)
        assert attempt is not None
        assert jobs.complete(session, job.id, attempt, Transcript(text="bir"), 0.1)
        return job.id

    with stack.session_factory() as session:
        finished_job(session)
        session.rollback()
    assert published == []
    with stack.session_factory() as session:
        kept = finished_job(session)
        with contextlib.suppress(RuntimeError), session.begin_nested():
            finished_job(session)
            raise RuntimeError("the savepoint rolls back")
        session.commit()
    with stack.session_factory() as session:
        (delivery,) = events.deliveries(session, job_id=kept)
    assert delivery.id in published
    assert len(published) == 2

    def broker_down(_ids: list[uuid.UUID]) -> None:
        raise ConnectionError("broker down")

    failing = make_session_factory(make_engine(stack.settings.database_url))
    events.publish_after_commit(failing, broker_down)
    with failing() as session:
        finished_job(session)
        session.commit()  # does not raise
