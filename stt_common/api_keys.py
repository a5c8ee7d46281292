"""API keys: `stt_<id>_<secret>`. The id (8 lowercase letters and digits) names the key in lists and
logs; the secret is 32 random bytes. Only the secret's SHA-256 is stored, and a presented key is
checked with a constant-time comparison. The `stt_` prefix lets secret scanners recognise a leaked key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from stt_common.db import utcnow
from stt_common.models import DEFAULT_TENANT, ApiKey

PREFIX = "stt_"
ID_ALPHABET = string.ascii_lowercase + string.digits
KEY_PATTERN = re.compile(r"stt_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, tenant: str, name: str | None = None, rate_limit_per_minute: int | None = None) -> NewKey:
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError("a tenant is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if tenant == DEFAULT_TENANT:  # it owns what was made with authentication off, and that secret
        raise ValueError(f"the tenant name {DEFAULT_TENANT!r} is reserved for use with authentication off")
    key_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(8))
    secret = secrets.token_urlsafe(32)  # 43 characters
    key = ApiKey(
        id=key_id,
        tenant=tenant,
        name=name,
        secret_sha256=_digest(secret),
        rate_limit_per_minute=rate_limit_per_minute,
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    return NewKey(key, f"{PREFIX}{key_id}_{secret}")


def verify(session: Session, presented: str) -> ApiKey | None:
    """The active key `presented` is, or None. The secret is compared in constant time; a malformed or
    unknown key costs the same hash as a wrong one."""
    match = KEY_PATTERN.fullmatch(presented.strip())
    key = session.get(ApiKey, match.group(1)) if match else None
    expected = key.secret_sha256 if key is not None else "0" * 64
    given = _digest(match.group(2) if match else presented)
    if not hmac.compare_digest(expected, given) or key is None or key.revoked_at is not None:
        return None
    return key


def revoke(session: Session, key_id: str) -> bool:
    key = session.get(ApiKey, key_id.removeprefix(PREFIX).split("_")[0])
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    return True


def listing(session: Session, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.tenant, ApiKey.created_at)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    return list(session.scalars(query))
