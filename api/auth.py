"""Who is calling: the API key in `Authorization: Bearer` (as OpenAI clients send it) or `X-API-Key`,
the tenant it belongs to, and its rate limit. With `STT_AUTH_ENABLED=false` everyone is the default
tenant (the api logs a warning at start-up).

The `Authentication` middleware settles it for every /v1 request before a byte of the body is read, so
a caller without a valid key cannot make the api parse, buffer or spool an upload. Routes take the
`Principal` it found through `PrincipalDep`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.datastructures import State as AppState
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import database_error_response, stt_error_response
from stt_common import api_keys
from stt_common.errors import SttError, TooManyRequests, Unauthorized
from stt_common.models import DEFAULT_TENANT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str | None = None  # None while authentication is off


def make_limiter(redis_url: str) -> MovingWindowRateLimiter:
    """Per-key limits kept in Redis, so every api process counts the same requests."""
    return MovingWindowRateLimiter(RedisStorage(redis_url, socket_connect_timeout=1, socket_timeout=2))


def _presented(headers: Headers) -> str | None:
    header = headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def _rate_limit(limiter: MovingWindowRateLimiter, key_id: str, per_minute: int) -> None:
    item = RateLimitItemPerMinute(per_minute)
    try:
        if limiter.hit(item, key_id):
            return
        reset = limiter.get_window_stats(item, key_id).reset_time
    except Exception as exc:  # Redis away: serve rather than refuse everyone (submissions fail on their own)
        log.warning("rate limit not checked: %s", exc.__class__.__name__)
        return
    raise TooManyRequests(f"this API key is limited to {per_minute} requests per minute",
                          retry_after_s=max(1, math.ceil(reset - time.time())))


def identify(state: AppState, headers: Headers) -> Principal:
    """The caller's principal, or Unauthorized / TooManyRequests. Blocking (database, Redis)."""
    presented = _presented(headers)
    if presented is None:
        raise Unauthorized("this endpoint needs an API key: send `Authorization: Bearer stt_...`",
                           code="missing_api_key")
    with state.session_factory() as session:
        key = api_keys.verify(session, presented)
    if key is None:
        raise Unauthorized("the API key is not valid (unknown, malformed or revoked)")
    _rate_limit(state.limiter, key.id, key.rate_limit_per_minute or state.settings.rate_limit_per_minute)
    return Principal(key.tenant, key.id)


class Authentication:
    """Identifies the caller of every /v1 request before the route reads its body; a refusal closes the
    connection without reading it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state: AppState = scope["app"].state
        try:
            if state.settings.auth_enabled:
                principal = await anyio.to_thread.run_sync(identify, state, Headers(scope=scope))
            else:
                principal = Principal(DEFAULT_TENANT)
        except (SttError, DBAPIError) as exc:
            response = stt_error_response(exc) if isinstance(exc, SttError) else database_error_response(exc)
            response.headers["Connection"] = "close"  # the body, if any, is never read
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def authenticate(request: Request) -> Principal:
    """The principal the middleware found (every /v1 router depends on this)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # only if the middleware is missing: refuse, never guess
        raise Unauthorized("the request was not authenticated", code="missing_api_key")
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]
