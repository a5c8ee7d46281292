"""API keys, tenants, rate limits and quotas through the real app, a real Redis and a real database."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from stt_common import api_keys
from stt_common.db import session_scope
from stt_common.models import ApiKey, Job
from tests.services import RedisServer, ThreadedServer, env_for
from tests.stack import SAMPLES, Stack, make_stack

CLIP = SAMPLES / "clip01.wav"


@pytest.fixture
def secured(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Stack:
    return make_stack(database_url, redis_server.url, tmp_path, auth_enabled=True, max_active_jobs=3)


@pytest.fixture
def client(secured: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(secured.settings)) as c:
        yield c


def new_key(stack: Stack, tenant: str, rate_limit: int | None = None) -> dict[str, str]:
    with session_scope(stack.session_factory) as s:
        made = api_keys.create(s, tenant, rate_limit_per_minute=rate_limit)
    return {"Authorization": f"Bearer {made.plaintext}"}


def submit(client: TestClient, headers: dict[str, str], **headers_extra: str) -> str:
    r = client.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, headers={**headers, **headers_extra})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_keys_are_prefixed_random_stored_hashed_and_revocable(secured: Stack) -> None:
    with session_scope(secured.session_factory) as s:
        made = [api_keys.create(s, "acme", name=f"k{i}") for i in range(3)]
    plain = made[0].plaintext
    assert api_keys.KEY_PATTERN.fullmatch(plain)
    assert plain.startswith("stt_")
    assert len({m.plaintext for m in made}) == 3
    assert len({m.key.id for m in made}) == 3
    with secured.session_factory() as s:
        rows = list(s.scalars(select(ApiKey)))
        secret = plain.split("_", 2)[2]
        assert all(secret not in str(vars(row)) for row in rows)  # only a digest is kept
        assert api_keys.verify(s, plain) is not None
        assert api_keys.verify(s, plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None  # wrong secret
        assert api_keys.verify(s, "stt_nope") is None
        assert api_keys.verify(s, "") is None
    with session_scope(secured.session_factory) as s:
        assert api_keys.revoke(s, made[0].key.id)
        assert not api_keys.revoke(s, made[0].key.id)
    with secured.session_factory() as s:
        assert api_keys.verify(s, plain) is None
        assert api_keys.verify(s, made[1].plaintext) is not None


def test_every_v1_route_needs_a_valid_key(client: TestClient, secured: Stack) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), path) for path, operations in paths.items() if path.startswith("/v1") for method in operations
    ]
    assert len(routes) >= 15
    some_id = str(uuid.uuid4())
    for method, path in routes:
        url = path.replace("{job_id}", some_id).replace("{batch_id}", some_id)
        missing = client.request(method, url)
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.json()["error"]["code"] == "missing_api_key"
        assert missing.headers["www-authenticate"]
        wrong = client.request(method, url, headers={"X-API-Key": "stt_aaaaaaaa_" + "x" * 43})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key"
    for open_path in ("/health", "/metrics"):
        assert client.get(open_path).status_code == 200
    good = new_key(secured, "acme")
    assert client.get("/v1/models", headers=good).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": good["Authorization"].split()[1]}).status_code == 200


def test_a_tenant_sees_only_its_own_jobs_batches_and_webhooks(client: TestClient, secured: Stack) -> None:
    acme, globex = new_key(secured, "acme"), new_key(secured, "globex")
    job = submit(client, acme, **{"Idempotency-Key": "same-key"})
    r = client.post("/v1/batches", files=[("files", (CLIP.name, CLIP.read_bytes()))], headers=acme)
    assert r.status_code == 202, r.text
    batch = r.json()["id"]
    foreign = [
        ("GET", f"/v1/jobs/{job}"),
        ("GET", f"/v1/jobs/{job}/transcript"),
        ("GET", f"/v1/jobs/{job}/audio"),
        ("GET", f"/v1/jobs/{job}/webhooks"),
        ("POST", f"/v1/jobs/{job}/webhooks/redeliver"),
        ("DELETE", f"/v1/jobs/{job}"),
        ("GET", f"/v1/batches/{batch}"),
        ("GET", f"/v1/batches/{batch}/results"),
        ("GET", f"/v1/batches/{batch}/webhooks"),
        ("POST", f"/v1/batches/{batch}/webhooks/redeliver"),
        ("DELETE", f"/v1/batches/{batch}"),
    ]
    for method, url in foreign:
        r = client.request(method, url, headers=globex)
        assert r.status_code == 404, (method, url, r.text)  # as if it did not exist
    assert client.get("/v1/jobs", headers=globex).json()["data"] == []
    assert {j["id"] for j in client.get("/v1/jobs", headers=acme).json()["data"]} >= {job}
    assert client.get(f"/v1/jobs/{job}", headers=acme).status_code == 200
    # The same Idempotency-Key from another tenant is another tenant's: a new job, not acme's.
    other = submit(client, globex, **{"Idempotency-Key": "same-key"})
    assert other != job
    assert submit(client, acme, **{"Idempotency-Key": "same-key"}) == job
    with secured.session_factory() as s:
        tenants = {str(j.id): j.tenant for j in s.scalars(select(Job))}
    assert tenants[job] == "acme"
    assert tenants[other] == "globex"


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(client: TestClient, secured: Stack) -> None:
    limited, other = new_key(secured, "acme", rate_limit=3), new_key(secured, "acme")
    answers = [client.get("/v1/models", headers=limited) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["ratelimit-limit"] for a in answers} == {"3"}
    assert all(1 <= int(a.headers["ratelimit-reset"]) <= 60 for a in answers)
    assert client.get("/v1/models", headers=other).status_code == 200  # limits are per key


def test_a_tenant_over_its_queued_job_quota_gets_429(client: TestClient, secured: Stack) -> None:
    acme, globex = new_key(secured, "acme"), new_key(secured, "globex")
    ids = [submit(client, acme) for _ in range(3)]  # max_active_jobs=3, no worker: they stay queued
    over = client.post("/v1/jobs", files={"file": (CLIP.name, CLIP.read_bytes())}, headers=acme)
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert over.headers["retry-after"] == "30"
    batch = client.post("/v1/batches", files=[("files", (CLIP.name, CLIP.read_bytes()))], headers=acme)
    assert batch.status_code == 429
    submit(client, globex)  # another tenant's quota is its own
    assert client.delete(f"/v1/jobs/{ids[0]}", headers=acme).status_code == 204
    submit(client, acme)
    with secured.session_factory() as s:
        assert len(list(s.scalars(select(Job).where(Job.tenant == "acme")))) == 4  # nothing from the refusals
    assert len(secured.storage.list_keys()) == 4  # 3 acme jobs (one deleted) + 1 globex


def test_auth_off_is_announced_loudly(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    assert stack.settings.auth_enabled is False
    with caplog.at_level(logging.WARNING), TestClient(create_app(stack.settings)) as c:
        assert c.get("/v1/models").status_code == 200  # no key needed
    assert any("authentication is OFF" in r.getMessage() for r in caplog.records)


def test_admin_cli_creates_lists_and_revokes_keys(secured: Stack) -> None:
    env = env_for(secured.env)

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.admin", "keys", *args], env=env, capture_output=True, text=True
        )

    created = admin("create", "--tenant", "acme", "--name", "ci", "--rate-limit", "100")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert api_keys.KEY_PATTERN.fullmatch(key)
    listed = admin("list").stdout
    assert key.split("_")[1] in listed
    assert "acme" in listed
    assert "100/min" in listed
    assert key not in listed
    with TestClient(create_app(secured.settings)) as c:
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert admin("revoke", key.split("_")[1]).returncode == 0
        revoked = c.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert revoked.status_code == 401
        assert revoked.json()["error"]["code"] == "invalid_api_key"
    assert admin("create", "--tenant", "no spaces").returncode != 0


def test_the_python_client_sends_its_key(secured: Stack) -> None:
    from client.api import ApiError, SttClient

    key = new_key(secured, "acme")["Authorization"].split()[1]
    server = ThreadedServer(create_app(secured.settings))
    try:
        with SttClient(server.url, api_key=key) as stt:
            job = stt.submit(CLIP)
            assert stt.job(job["id"])["status"] == "queued"
        with SttClient(server.url) as anonymous, pytest.raises(ApiError) as refused:
            anonymous.job(job["id"])
    finally:
        server.stop()
    assert (refused.value.status, refused.value.code) == (401, "missing_api_key")


def test_each_tenant_signs_its_webhooks_with_its_own_secret(client: TestClient, secured: Stack) -> None:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    from stt_common import events, jobs
    from stt_common.transcript import Transcript
    from tests.services import WebhookReceiver
    from worker.webhook_sender import SenderContext, deliver

    secrets = {
        t: client.get("/v1/webhooks/secret", headers=new_key(secured, t)).json()["secret"] for t in ("acme", "globex")
    }
    assert secrets["acme"] != secrets["globex"]
    assert all(s.startswith("whsec_") for s in secrets.values())
    assert client.get("/v1/webhooks/secret", headers=new_key(secured, "acme")).json()["secret"] == secrets["acme"]
    receiver = WebhookReceiver()
    settings = secured.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    try:
        with session_scope(secured.session_factory) as session:
            job = Job(
                id=uuid.uuid4(),
                tenant="acme",
                model="tr-espeak-small",
                audio_sha256="0" * 64,
                audio_bytes=1,
                webhook_url=receiver.url(),
            )
            session.add(job)
            session.flush()
            attempt = jobs.claim(session, job.id, 60, max_attempts=3)
            assert attempt is not None
            assert jobs.complete(session, job.id, attempt, Transcript(text="x"), 0.1)
            (delivery_id,) = events.take_new(session)
        assert deliver(SenderContext(settings, secured.session_factory), delivery_id) is None
    finally:
        receiver.stop()
    (request,) = receiver.received
    Webhook(secrets["acme"]).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):  # another tenant cannot pass off an event as acme's
        Webhook(secrets["globex"]).verify(request.body, request.headers)


def test_the_tenant_that_owns_auth_off_data_cannot_be_given_a_key(secured: Stack) -> None:
    with session_scope(secured.session_factory) as s, pytest.raises(ValueError, match="reserved"):
        api_keys.create(s, "default")
    out = subprocess.run(
        [sys.executable, "-m", "api.admin", "keys", "create", "--tenant", "default"],
        env=env_for(secured.env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "reserved" in out.stderr
    assert "stt_" not in out.stdout


@pytest.mark.parametrize("ttl", [0.0, 30.0])
def test_metrics_can_need_a_token_and_serve_one_reading_for_a_while(
    database_url: str, redis_server: RedisServer, tmp_path: Path, ttl: float
) -> None:
    stack = make_stack(
        database_url, redis_server.url, tmp_path, metrics_token="scrape-secret-1234", metrics_cache_seconds=ttl
    )
    queued = 'stt_jobs{status="queued"}'
    with TestClient(create_app(stack.settings)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret-1234"}):
            r = client.get("/metrics", headers=headers)
            assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_metrics_token")
        scraper = {"Authorization": "Bearer scrape-secret-1234"}
        first = client.get("/metrics", headers=scraper)
        assert first.status_code == 200
        assert f"{queued} 0.0" in first.text
        submit(client, new_key(stack, "acme"))
        again = client.get("/metrics", headers=scraper).text
    assert f"{queued} {0.0 if ttl else 1.0}" in again  # within the cache's time, the same reading
