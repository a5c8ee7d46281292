"""The one error hierarchy of the service.

`InputError`s are permanent: the request or the audio is at fault, so they become a 4xx with a stable
`code` at the edge and are never retried by a worker. `TransientError`s (a database or broker hiccup)
are retried with back-off. The api maps them to HTTP in `api/errors.py`; the worker maps them to
retries in the task of `worker/celery_app.py`.
"""

from __future__ import annotations


class SttError(Exception):
    """`fields` join `code` and `message` in the error body; `headers` go on the response."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 fields: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status


class InputError(SttError):
    """The caller's input is wrong; retrying cannot help."""

    code = "invalid_input"
    http_status = 400


class EmptyFile(InputError):
    code = "empty_file"


class InvalidAudio(InputError):
    code = "invalid_audio"
    http_status = 415


class UnsupportedAudio(InvalidAudio):
    """Audio, but outside what the service decodes (sample rate, channel count)."""

    code = "unsupported_audio"


class NoAudioStream(InputError):
    code = "no_audio_stream"
    http_status = 422


class CorruptAudio(InputError):
    code = "corrupt_audio"
    http_status = 422


class TruncatedAudio(InputError):
    code = "truncated_audio"
    http_status = 422


class EmptyAudio(InputError):
    code = "empty_audio"
    http_status = 422


class AudioTooShort(InputError):
    code = "audio_too_short"
    http_status = 422


class FileTooLarge(InputError):
    code = "file_too_large"
    http_status = 413


class TooManyFiles(InputError):
    code = "too_many_files"
    http_status = 413

    @classmethod
    def in_batch(cls, limit: int) -> TooManyFiles:
        return cls(f"a batch holds at most {limit} files (STT_MAX_BATCH_ITEMS)")


class AudioTooLong(InputError):
    code = "audio_too_long"
    http_status = 422


class InvalidMetadata(InputError):
    """The `metadata` field is not a small, shallow JSON object (NaN and Infinity are not JSON)."""

    code = "invalid_metadata"


class UnknownModel(InputError):
    code = "unknown_model"


class NotFound(SttError):
    code = "not_found"
    http_status = 404


class JobNotFound(NotFound):
    code = "job_not_found"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class Conflict(SttError):
    code = "conflict"
    http_status = 409


class Unauthorized(SttError):
    """No API key, or one that is unknown or revoked."""

    code = "invalid_api_key"
    http_status = 401


class TooManyRequests(SttError):
    """A rate limit or quota; `retry_after_s` becomes the Retry-After header."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, headers=headers)
        self.retry_after_s = retry_after_s


class TransientError(SttError):
    """A dependency is briefly unavailable; the same work may succeed later."""

    code = "service_unavailable"
    http_status = 503


class ModelError(SttError):
    """A model folder is incomplete or corrupt: an operator must fix the deployment."""

    code = "model_error"


def is_transient(exc: BaseException) -> bool:
    """The one classification of failures a retry may cure (a dependency down or timing out)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, InputError | ModelError):
        return False
    return isinstance(
        exc,
        TransientError | OperationalError | InterfaceError | RedisConnectionError | RedisTimeoutError
        | ConnectionError | TimeoutError,
    )
