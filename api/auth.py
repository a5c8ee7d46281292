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
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.datastructures import State as AppState
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import database_error_response, stt_error_response
from stt_common import api_keys
from stt_common.errors import ErrorCode, SttError, TooManyRequests, Unauthorized
from stt_common.models import DEFAULT_TENANT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str | None = None  # None while authentication is off


def make_limiter(redis_url: str) -> MovingWindowRateLimiter:
    """Per-key limits kept in Redis, so every api process counts the same requests."""
    return MovingWindowRateLimiter(RedisStorage(redis_url, socket_connect_timeout=1, socket_timeout=2))


def bearer_token(headers: Headers) -> str | None:
    """The credentials of `Authorization: Bearer ...`, if that is what was sent."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _presented(headers: Headers) -> str | None:
    return bearer_token(headers) or headers.get("x-api-key") or None


def _rate_limit(limiter: MovingWindowRateLimiter, key_id: str, per_minute: int) -> dict[str, str]:
    """Count the request; the `RateLimit-*` headers that tell the caller where it stands."""
    item = RateLimitItemPerMinute(per_minute)
    try:
        allowed = limiter.hit(item, key_id)
        window = limiter.get_window_stats(item, key_id)
    except Exception as exc:  # Redis away: serve rather than refuse everyone (submissions fail on their own)
        log.warning("rate limit not checked: %s", exc.__class__.__name__)
        return {}
    reset_s = max(1, math.ceil(window.reset_time - time.time()))
    headers = {
        "RateLimit-Limit": str(per_minute),
        "RateLimit-Remaining": str(window.remaining),
        "RateLimit-Reset": str(reset_s),
    }
    if not allowed:
        raise TooManyRequests(
            f"this API key is limited to {per_minute} requests per minute", retry_after_s=reset_s, headers=headers
        )
    return headers


def identify(state: AppState, headers: Headers) -> tuple[Principal, dict[str, str]]:
    """The caller's principal and its rate-limit headers, or Unauthorized / TooManyRequests. Blocking
    (database, Redis)."""
    presented = _presented(headers)
    if presented is None:
        raise Unauthorized(
            "this endpoint needs an API key: send `Authorization: Bearer stt_...`", code=ErrorCode.missing_api_key
        )
    with state.session_factory() as session:
        key = api_keys.verify(session, presented)
    if key is None:
        raise Unauthorized("the API key is not valid (unknown, malformed or revoked)")
    per_minute = key.rate_limit_per_minute or state.settings.rate_limit_per_minute
    return Principal(key.tenant, key.id), _rate_limit(state.limiter, key.id, per_minute)


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
        limit_headers: dict[str, str] = {}
        try:
            if state.settings.auth_enabled:
                principal, limit_headers = await anyio.to_thread.run_sync(identify, state, Headers(scope=scope))
            else:
                principal = Principal(DEFAULT_TENANT)
        except (SttError, DBAPIError) as exc:
            response = stt_error_response(exc) if isinstance(exc, SttError) else database_error_response(exc)
            response.headers["Connection"] = "close"  # the body, if any, is never read
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, _with_headers(send, limit_headers) if limit_headers else send)


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


# Declared for the OpenAPI schema (so /docs can send a key); the middleware has already read them.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="`Authorization: Bearer stt_...`")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="`X-API-Key: stt_...`")


def authenticate(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    _api_key: Annotated[str | None, Security(API_KEY)] = None,
) -> Principal:
    """The principal the middleware found (every /v1 router depends on this)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # only if the middleware is missing: refuse, never guess
        raise Unauthorized("the request was not authenticated", code=ErrorCode.missing_api_key)
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]
