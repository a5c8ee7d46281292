"""`Idempotency-Key` on create requests: a client that retries a POST (after a timeout, a dropped
connection) gets the object its first request made instead of a second one."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stt_common.errors import Conflict, ErrorCode
from stt_common.models import IdempotencyKey

REPLAY_HEADER = "Idempotent-Replayed"
Made = TypeVar("Made")


@dataclass(frozen=True)
class Idempotency:
    """A create request's `Idempotency-Key` (scoped to its tenant) and the digest of what it asked for."""

    key: str
    digest: str

    @classmethod
    def of(
        cls, tenant: str, key: str | None, route: str, fields: dict[str, str | None], uploads: Iterable[BinaryIO]
    ) -> Idempotency | None:
        return cls(scoped_key(tenant, key), request_digest(route, fields, uploads)) if key else None


def made_once(
    session: Session,
    idempotency: Idempotency | None,
    create: Callable[[], Made],
    made: Callable[[IdempotencyKey], Made | None],
) -> tuple[Made, bool]:
    """`(create(), False)`, unless this key already made something: then `(made(key), True)`. A
    concurrent request with the same key that commits first (the IntegrityError of ours) is replayed too."""
    if idempotency is not None:
        earlier = replay(session, idempotency)
        if earlier is not None and (found := made(earlier)) is not None:
            return found, True
    try:
        return create(), False
    except IntegrityError:
        winner = replay(session, idempotency) if idempotency is not None else None
        if winner is None or (found := made(winner)) is None:
            raise
        return found, True


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


def replay(session: Session, idempotency: Idempotency) -> IdempotencyKey | None:
    """What an earlier request with this key made (its `job_id` or `batch_id`, which the caller looks
    up: a deleted one is a 404); None if the key is new. Refuses a key reused for a different request."""
    earlier = session.get(IdempotencyKey, idempotency.key)
    if earlier is None:
        return None
    if earlier.request_sha256 != idempotency.digest:
        raise Conflict(
            "this Idempotency-Key was used for a different request; use a new key",
            code=ErrorCode.idempotency_key_reused,
        )
    return earlier


def remember(
    session: Session, idempotency: Idempotency, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None
) -> None:
    session.add(
        IdempotencyKey(key=idempotency.key, request_sha256=idempotency.digest, job_id=job_id, batch_id=batch_id)
    )


def forget(session: Session, idempotency: Idempotency) -> None:
    """Drop a key whose work was taken back (the queue refused it), so a retry with it can succeed."""
    earlier = session.get(IdempotencyKey, idempotency.key)
    if earlier is not None:
        session.delete(earlier)
