"""Looking up a tenant's own object by id: the one rule for jobs and batches alike. A malformed id, a
missing or deleted object and another tenant's object are all the same "not found", so an id reveals
nothing about objects its caller does not own."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy.orm import Session

from stt_common.errors import NotFound
from stt_common.models import Batch, Job

Owned = TypeVar("Owned", Job, Batch)


def parse_id(model: type[Owned], raw: uuid.UUID | str, not_found: type[NotFound]) -> uuid.UUID:
    """An id from a URL or a message; a malformed one is `not_found`, as a missing object is."""
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        raise not_found(f"no {model.__name__.lower()} with id {str(raw)[:64]!r}") from None


def get_owned(
    session: Session, model: type[Owned], object_id: uuid.UUID | str, tenant: str | None, not_found: type[NotFound]
) -> Owned:
    """The live `model` row with this id, owned by `tenant` (any owner when None), or `not_found`."""
    ident = parse_id(model, object_id, not_found)
    found = session.get(model, ident)
    if found is None or found.deleted_at is not None or (tenant is not None and found.tenant != tenant):
        raise not_found(f"no {model.__name__.lower()} with id {ident}")
    return found
