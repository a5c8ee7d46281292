"""Who is calling: the API key in `Authorization: Bearer` (as OpenAI clients send it) or `X-API-Key`,
the tenant it belongs to, and its rate limit. Every /v1 router depends on `authenticate`; routes that
read or write a tenant's objects also take the `Principal`. With `STT_AUTH_ENABLED=false` everyone is
the default tenant (the api logs a warning at start-up).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from api.deps import SessionDep, SettingsDep
from stt_common import api_keys
from stt_common.errors import TooManyRequests, Unauthorized
from stt_common.models import DEFAULT_TENANT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str | None = None  # None while authentication is off


def make_limiter(redis_url: str) -> MovingWindowRateLimiter:
    """Per-key limits kept in Redis, so every api process counts the same requests."""
    return MovingWindowRateLimiter(RedisStorage(redis_url, socket_connect_timeout=1, socket_timeout=2))


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key") or None


def _rate_limit(request: Request, key_id: str, per_minute: int) -> None:
    limiter: MovingWindowRateLimiter = request.app.state.limiter
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


def authenticate(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    if not settings.auth_enabled:
        return Principal(DEFAULT_TENANT)
    presented = _presented(request)
    if presented is None:
        raise Unauthorized("this endpoint needs an API key: send `Authorization: Bearer stt_...`",
                           code="missing_api_key")
    key = api_keys.verify(session, presented)
    if key is None:
        raise Unauthorized("the API key is not valid (unknown, malformed or revoked)")
    _rate_limit(request, key.id, key.rate_limit_per_minute or settings.rate_limit_per_minute)
    return Principal(key.tenant, key.id)


PrincipalDep = Annotated[Principal, Depends(authenticate)]
