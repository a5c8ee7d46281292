"""Sending one webhook delivery, as plain functions: claim → resolve and check the address → POST the
signed body → record the attempt → schedule a retry or finish. No Celery here (worker/webhook_app.py).

Retried: timeouts, connection errors, 429 and 5xx, on `webhook_retry_schedule` with ±20% jitter (a
longer Retry-After wins). Final: 2xx (delivered), 410 (disabled), a redirect (never followed), other
4xx, and an address the SSRF guard refuses.

Each attempt has one deadline, `webhook_timeout_seconds`, for all of it: the address lookup, connecting,
sending and reading the answer's start. httpx's timeouts count per read, so a receiver dripping a byte
every few seconds would hold an attempt for minutes; the attempt runs on an event loop of its own under
`asyncio.timeout`, which cancels it wherever it is. The claim's lease (`LEASE_FACTOR` deadlines and
more) always outlasts a live attempt, so the sweep can never send the same delivery twice at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from stt_common import __version__, metrics
from stt_common.db import session_scope, utcnow
from stt_common.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from stt_common.settings import Settings
from stt_common.webhooks import AddressRefused, pinned_url, public_address, sign, signing_secret

log = logging.getLogger(__name__)

RESPONSE_BYTES = 1024  # of the receiver's answer kept in the attempt log
SHORT_DELAY_S = 60.0  # retries sooner than this are queued with a countdown; later ones wait for the sweep
REPUBLISH_AFTER_S = 120.0  # a due delivery whose message is older than this is published again
USER_AGENT = f"turkish-stt-webhooks/{__version__}"
LEASE_FACTOR, LEASE_MARGIN_S = 3, 30.0  # the claim lasts 3 deadlines + 30 s; an attempt at most 1 deadline
# Lookups run here, not in the event loop's default executor: asyncio.run waits for that one's threads
# at exit, so a resolver that hangs would outlast the deadline.
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-dns")


class Verdict(StrEnum):
    delivered = "delivered"
    retry = "retry"
    gone = "gone"
    final = "final"  # will not succeed by retrying


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    latency_ms: float | None = None
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    retry_after_s: float | None = None


@dataclass
class SenderContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # by tenant, read once per process

    def signing_secret(self, session: Session, tenant: str) -> str:
        if tenant not in self.secrets:
            self.secrets[tenant] = signing_secret(session, self.settings.webhook_secret, tenant)
        return self.secrets[tenant]


def make_client() -> httpx.AsyncClient:
    """One per attempt: no proxies from the environment (they would bypass the address check), no
    redirects, and no kept-alive connections (a connection made for one host name must not serve
    another on the same address)."""
    return httpx.AsyncClient(trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))


def lease_seconds(settings: Settings) -> float:
    return settings.webhook_timeout_seconds * LEASE_FACTOR + LEASE_MARGIN_S


def _claim(session: Session, delivery_id: uuid.UUID, lease_s: float) -> WebhookDelivery | None:
    now = utcnow()
    due = or_(
        and_(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= now),
        and_(WebhookDelivery.status == DeliveryStatus.sending, WebhookDelivery.lease_expires_at < now),
    )
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, due)
        .values(
            status=DeliveryStatus.sending,
            attempts=WebhookDelivery.attempts + 1,
            lease_expires_at=now + dt.timedelta(seconds=lease_s),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(WebhookDelivery, delivery_id, populate_existing=True)


def deliver(ctx: SenderContext, delivery_id: uuid.UUID) -> float | None:
    """Make one attempt if the delivery is due. Returns the delay until the next attempt, if any."""
    settings = ctx.settings
    with session_scope(ctx.session_factory) as session:
        delivery = _claim(session, delivery_id, lease_seconds(settings))
        if delivery is None:
            log.debug("delivery %s: not due or already taken; skipped", delivery_id)
            return None
        secret = ctx.signing_secret(session, delivery.tenant)
        url, body, number, msg_id = delivery.url, delivery.body, delivery.attempts, delivery.webhook_id
        retries_used = delivery.attempts - delivery.round_offset
    started = utcnow()
    attempt = send(url, msg_id, body, secret, settings.webhook_timeout_seconds, settings.webhook_allowed_hosts)
    delay = _next_delay(attempt, retries_used, settings.webhook_retry_schedule)
    with session_scope(ctx.session_factory) as session:
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                number=number,
                started_at=started,
                latency_ms=attempt.latency_ms,
                status_code=attempt.status_code,
                error=attempt.error,
                response=attempt.response,
            )
        )
        _finish(session, delivery_id, number, attempt.verdict, delay)
    metrics.webhook_attempt(settings.redis_url, _outcome(attempt))
    log.info(
        "delivery %s attempt %d: %s (%s)%s",
        msg_id,
        number,
        attempt.verdict,
        attempt.status_code or attempt.error,
        f"; retry in {delay:.0f} s" if delay is not None else "",
    )
    return delay


def _outcome(attempt: Attempt) -> str:
    """The metrics label: `delivered`, `http_4xx`, `http_5xx`, `timeout`, `connection_error`, ..."""
    if attempt.verdict == Verdict.delivered:
        return "delivered"
    if attempt.status_code:
        return f"http_{attempt.status_code // 100}xx"
    return attempt.error or "error"


def _next_delay(attempt: Attempt, retries_used: int, schedule: list[float]) -> float | None:
    if attempt.verdict != Verdict.retry or retries_used > len(schedule):
        return None
    delay = schedule[retries_used - 1] * random.uniform(0.8, 1.2)
    if attempt.retry_after_s is not None:
        delay = max(delay, min(attempt.retry_after_s, 86400.0))
    return delay


def _finish(session: Session, delivery_id: uuid.UUID, number: int, verdict: Verdict, delay: float | None) -> None:
    now = utcnow()
    values: dict[str, object] = {"lease_expires_at": None}
    if delay is not None:
        values |= {
            "status": DeliveryStatus.pending,
            "next_attempt_at": now + dt.timedelta(seconds=delay),
            "enqueued_at": now if delay <= SHORT_DELAY_S else None,
        }
    else:
        status = {Verdict.delivered: DeliveryStatus.delivered, Verdict.gone: DeliveryStatus.disabled}.get(
            verdict, DeliveryStatus.failed
        )
        values |= {"status": status, "finished_at": now, "next_attempt_at": None}
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == number,
            WebhookDelivery.status == DeliveryStatus.sending,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def send(url: str, msg_id: str, body: str, secret: str, deadline_s: float, allowlist: list[str]) -> Attempt:
    """One signed POST to the address the URL's host resolves to now, checked by the SSRF guard, all of
    it within `deadline_s`."""
    return asyncio.run(_send(url, msg_id, body, secret, deadline_s, allowlist))


async def _send(url: str, msg_id: str, body: str, secret: str, deadline_s: float, allowlist: list[str]) -> Attempt:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            lookup = asyncio.get_running_loop().run_in_executor(_RESOLVER, public_address, host, port, allowlist)
            try:
                address = await lookup
            except AddressRefused as exc:
                return Attempt(Verdict.final, error="address_refused", response=str(exc))
            except (socket.gaierror, UnicodeError) as exc:
                return Attempt(Verdict.retry, error="dns_error", response=str(exc)[:RESPONSE_BYTES])
            timestamp = int(time.time())
            headers = {
                "host": parts.netloc,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, msg_id, timestamp, body),
            }
            extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
            async with (
                make_client() as client,
                client.stream(
                    "POST",
                    pinned_url(parts, address, port),
                    content=body.encode(),
                    headers=headers,
                    timeout=deadline_s,
                    extensions=extensions,
                ) as response,
            ):
                answer = await _read_start(response)
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(Verdict.retry, latency_ms=_ms(started), error="timeout")
    except httpx.TransportError as exc:
        return Attempt(
            Verdict.retry,
            latency_ms=_ms(started),
            error="connection_error",
            response=f"{exc.__class__.__name__}: {exc}"[:RESPONSE_BYTES],
        )
    code = response.status_code
    outcome = Attempt(Verdict.final, latency_ms=_ms(started), status_code=code, response=answer)
    if 200 <= code < 300:
        return replace(outcome, verdict=Verdict.delivered)
    if code == 410:
        return replace(outcome, verdict=Verdict.gone, error="gone")
    if 300 <= code < 400:
        return replace(outcome, error="redirect_refused")
    if code == 429 or code >= 500:
        return replace(outcome, verdict=Verdict.retry, error="http_error", retry_after_s=_retry_after(response))
    return replace(outcome, error="http_error")


async def _read_start(response: httpx.Response) -> str:
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_BYTES:
            break
    return kept[:RESPONSE_BYTES].decode("utf-8", errors="replace")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def due_deliveries(session: Session, limit: int = 500) -> list[uuid.UUID]:
    """Deliveries that should be sent now but have no recent message (a lost publish, a retry that
    waited for the sweep, a sender that died mid-attempt). Marks them enqueued."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=REPUBLISH_AFTER_S)
    query = (
        select(WebhookDelivery.id)
        .where(
            or_(
                and_(
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.enqueued_at.is_(None), WebhookDelivery.enqueued_at < stale),
                ),
                and_(WebhookDelivery.status == DeliveryStatus.sending, WebhookDelivery.lease_expires_at < now),
            )
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids
