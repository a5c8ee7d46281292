"""Every error leaves the api as `{"error": {"code", "message"}}`; this is the one place that maps
exceptions to HTTP statuses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from stt_common.errors import ErrorCode, SttError, TooManyFiles

log = logging.getLogger(__name__)

HTTP_CODES = {  # for errors raised by FastAPI and Starlette themselves
    400: ErrorCode.bad_request,
    401: ErrorCode.invalid_api_key,
    404: ErrorCode.not_found,
    405: ErrorCode.method_not_allowed,
    408: ErrorCode.request_timeout,
    409: ErrorCode.conflict,
    413: ErrorCode.file_too_large,
    415: ErrorCode.unsupported_media_type,
    422: ErrorCode.validation_error,
    429: ErrorCode.rate_limited,
    503: ErrorCode.service_unavailable,
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, fields: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **(fields or {})}}, status_code=status, headers=headers
    )


class BodyTooLarge(HTTPException):
    """Raised from inside request parsing; an HTTPException so FastAPI re-raises it untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the upload is larger than the limit of {limit} bytes")


class BodyTimeout(HTTPException):
    """The request body stopped arriving, or arrives slower than the least rate (api/limits.py)."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message, headers={"Connection": "close"})


def too_many_files(path: str, max_batch_items: int) -> TooManyFiles:
    if path.startswith("/v1/batches"):
        return TooManyFiles.in_batch(max_batch_items)
    return TooManyFiles("this endpoint takes one `file` part; send many files as a batch (POST /v1/batches)")


def stt_error_response(exc: SttError) -> JSONResponse:
    return error_response(exc.http_status, exc.code, exc.message, exc.headers, exc.fields)


def database_error_response(exc: DBAPIError) -> JSONResponse:
    log.warning("database unavailable: %s", exc.__class__.__name__)
    return error_response(
        503, ErrorCode.database_unavailable, "the database is unavailable; retry shortly", {"Retry-After": "5"}
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SttError)
    async def _stt_error(_: Request, exc: SttError) -> JSONResponse:
        return stt_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(422, ErrorCode.validation_error, "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code: str = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = str(exc.detail)
        if exc.status_code == 400 and detail.startswith("Too many files"):  # Starlette's part count
            return stt_error_response(too_many_files(request.url.path, request.app.state.settings.max_batch_items))
        if exc.status_code == 400 and detail.startswith("Too many fields"):
            code = ErrorCode.too_many_parts
        if exc.status_code == 400 and detail.startswith(("Field exceeded maximum size", "Part exceeded maximum size")):
            code = ErrorCode.field_too_large
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _: Exception) -> JSONResponse:
        """Whatever escaped everything else still answers in the one error shape (and is logged)."""
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, ErrorCode.internal_error, "an unexpected error; it has been logged")

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        return database_error_response(exc)
