"""JSON request bodies on routes that also take a multipart form (POST /v1/jobs and /v1/batches with
audio by URL): read only when the content type says JSON, and never past a size bound."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stt_common.errors import ErrorCode, InputError


class JsonOptions(BaseModel):
    """The options a JSON body carries beside its audio, as the form's fields of the same names."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=128)
    webhook_url: str | None = Field(None, max_length=2048)
    metadata: dict[str, Any] | None = None
    format_text: bool | None = None

    def metadata_field(self) -> str | None:
        """`metadata` as the form carries it (JSON text), for the checks both share."""
        return json.dumps(self.metadata) if self.metadata is not None else None


Body = TypeVar("Body", bound=BaseModel)


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def read_json(request: Request, shape: type[Body], max_bytes: int) -> Body | None:
    """The request's JSON body as `shape`, or None for a form. A body past `max_bytes` is refused as it
    streams in, as an oversized form field is (400 `field_too_large`); one that does not fit `shape` is
    422 `validation_error`."""
    if not is_json(request):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InputError(
                f"the JSON body is larger than {max_bytes} bytes", code=ErrorCode.field_too_large, http_status=400
            )
    try:
        return shape.model_validate_json(bytes(body) or b"null")
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
