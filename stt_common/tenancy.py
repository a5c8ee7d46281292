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


def get_owned(session: Session, model: type[Owned], object_id: uuid.UUID | str, tenant: str | None,
              not_found: type[NotFound]) -> Owned:
    """The live `model` row with this id, owned by `tenant` (any owner when None), or `not_found`."""
    try:
        ident = object_id if isinstance(object_id, uuid.UUID) else uuid.UUID(object_id)
    except (ValueError, TypeError, AttributeError):
        raise not_found(f"no {model.__name__.lower()} with id {str(object_id)[:64]!r}") from None
    found = session.get(model, ident)
    if found is None or found.deleted_at is not None or (tenant is not None and found.tenant != tenant):
        raise not_found(f"no {model.__name__.lower()} with id {ident}")
    return found
