"""`Idempotency-Key` on create requests: a client that retries a POST (after a timeout, a dropped
connection) gets the object its first request made instead of a second one."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import BinaryIO

from sqlalchemy.orm import Session

from stt_common.errors import Conflict
from stt_common.models import IdempotencyKey

REPLAY_HEADER = "Idempotent-Replayed"


def scoped_key(tenant: str, key: str) -> str:
    """Keys are the tenant's own: two tenants may use the same key without meeting. Stored as a digest,
    so the client's key itself is not kept."""
    return hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()


def request_digest(route: str, fields: dict[str, str | None], uploads: Iterable[BinaryIO]) -> str:
    """What makes two requests "the same": the route, the form fields and the files' bytes, in order."""
    digest = hashlib.sha256(route.encode())
    for name in sorted(fields):
        digest.update(f"\0{name}={fields[name] or ''}".encode())
    for upload in uploads:
        upload.seek(0)
        digest.update(b"\0file=" + hashlib.file_digest(upload, "sha256").digest())  # type: ignore[arg-type]
        upload.seek(0)
    return digest.hexdigest()


def replay(session: Session, key: str, digest: str) -> IdempotencyKey | None:
    """What an earlier request with this key made (its `job_id` or `batch_id`, which the caller looks
    up: a deleted one is a 404); None if the key is new. Refuses a key reused for a different request."""
    earlier = session.get(IdempotencyKey, key)
    if earlier is None:
        return None
    if earlier.request_sha256 != digest:
        raise Conflict("this Idempotency-Key was used for a different request; use a new key",
                       code="idempotency_key_reused")
    return earlier


def remember(session: Session, key: str, digest: str, *, job_id: uuid.UUID | None = None,
             batch_id: uuid.UUID | None = None) -> None:
    session.add(IdempotencyKey(key=key, request_sha256=digest, job_id=job_id, batch_id=batch_id))


def forget(session: Session, key: str) -> None:
    """Drop a key whose job was taken back (the queue refused it), so a retry with it can succeed."""
    earlier = session.get(IdempotencyKey, key)
    if earlier is not None:
        session.delete(earlier)
