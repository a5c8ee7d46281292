"""`Idempotency-Key` on create requests: a client that retries a POST (after a timeout, a dropped
connection) gets the object its first request made instead of a second one."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from sqlalchemy.orm import Session

from stt_common import jobs
from stt_common.errors import Conflict
from stt_common.models import IdempotencyKey, Job

REPLAY_HEADER = "Idempotent-Replayed"


def request_digest(route: str, fields: dict[str, str | None], upload: BinaryIO) -> str:
    """What makes two requests "the same": the route, the form fields and the file's bytes."""
    digest = hashlib.sha256(route.encode())
    for name in sorted(fields):
        digest.update(f"\0{name}={fields[name] or ''}".encode())
    upload.seek(0)
    for block in iter(lambda: upload.read(1 << 20), b""):
        digest.update(block)
    upload.seek(0)
    return digest.hexdigest()


def replay(session: Session, key: str, digest: str) -> Job | None:
    """The job an earlier request with this key made; None if the key is new. Refuses a key reused
    for a different request."""
    earlier = session.get(IdempotencyKey, key)
    if earlier is None:
        return None
    if earlier.request_sha256 != digest:
        raise Conflict("this Idempotency-Key was used for a different request; use a new key",
                       code="idempotency_key_reused")
    return jobs.get_job(session, earlier.job_id)


def remember(session: Session, key: str, digest: str, job: Job) -> None:
    session.add(IdempotencyKey(key=key, request_sha256=digest, job_id=job.id))


def forget(session: Session, key: str) -> None:
    """Drop a key whose job was taken back (the queue refused it), so a retry with it can succeed."""
    earlier = session.get(IdempotencyKey, key)
    if earlier is not None:
        session.delete(earlier)
