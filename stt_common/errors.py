"""The one error hierarchy of the service.

`InputError`s are permanent: the request or the audio is at fault, so they become a 4xx with a stable
`code` at the edge and are never retried by a worker. `TransientError`s (a database or broker hiccup)
are retried with back-off. The api maps them to HTTP in `api/errors.py`; the worker maps them to
retries in the task of `worker/celery_app.py`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every `error.code` the service answers or records, in one place (docs/API.md explains each;
    tests/test_docs.py checks that it does). A member is its own string in JSON."""

    # The request as a whole
    bad_request = "bad_request"
    method_not_allowed = "method_not_allowed"
    not_found = "not_found"
    conflict = "conflict"
    unsupported_media_type = "unsupported_media_type"
    validation_error = "validation_error"
    invalid_input = "invalid_input"
    internal_error = "internal_error"
    service_unavailable = "service_unavailable"
    request_timeout = "request_timeout"
    file_too_large = "file_too_large"
    too_many_files = "too_many_files"
    too_many_parts = "too_many_parts"
    field_too_large = "field_too_large"
    invalid_range = "invalid_range"
    range_not_satisfiable = "range_not_satisfiable"
    # Who is calling, and how much
    missing_api_key = "missing_api_key"
    invalid_api_key = "invalid_api_key"
    invalid_metrics_token = "invalid_metrics_token"
    rate_limited = "rate_limited"
    quota_exceeded = "quota_exceeded"
    too_many_waiting_requests = "too_many_waiting_requests"
    # The audio
    empty_file = "empty_file"
    invalid_audio = "invalid_audio"
    unsupported_audio = "unsupported_audio"
    no_audio_stream = "no_audio_stream"
    corrupt_audio = "corrupt_audio"
    truncated_audio = "truncated_audio"
    empty_audio = "empty_audio"
    audio_too_short = "audio_too_short"
    audio_too_long = "audio_too_long"
    # Form fields
    invalid_metadata = "invalid_metadata"
    invalid_webhook_url = "invalid_webhook_url"
    unknown_model = "unknown_model"
    unsupported_language = "unsupported_language"
    invalid_cursor = "invalid_cursor"
    idempotency_key_reused = "idempotency_key_reused"
    # Batches and their archives
    invalid_archive = "invalid_archive"
    empty_batch = "empty_batch"
    corrupt_archive_member = "corrupt_archive_member"
    compression_ratio_too_high = "compression_ratio_too_high"
    unsupported_compression = "unsupported_compression"
    unsafe_archive_path = "unsafe_archive_path"
    # Objects and their state
    job_not_found = "job_not_found"
    batch_not_found = "batch_not_found"
    model_not_found = "model_not_found"
    job_not_succeeded = "job_not_succeeded"
    job_canceled = "job_canceled"
    transcript_expired = "transcript_expired"
    audio_expired = "audio_expired"
    audio_not_ready = "audio_not_ready"
    no_webhook_event = "no_webhook_event"
    delivery_in_progress = "delivery_in_progress"
    # Dependencies
    queue_unavailable = "queue_unavailable"
    database_unavailable = "database_unavailable"
    broker_unavailable = "broker_unavailable"
    storage_unavailable = "storage_unavailable"
    transcription_timeout = "transcription_timeout"
    # Set by the worker on a failed job
    audio_missing = "audio_missing"
    audio_corrupt = "audio_corrupt"
    url_forbidden = "url_forbidden"
    url_unreachable = "url_unreachable"
    url_too_large = "url_too_large"
    url_not_audio = "url_not_audio"
    model_unavailable = "model_unavailable"
    model_error = "model_error"
    retries_exhausted = "retries_exhausted"
    worker_lost = "worker_lost"


class SttError(Exception):
    """`fields` join `code` and `message` in the error body; `headers` (the class's `default_headers`
    and the instance's own) go on the response."""

    code: ErrorCode = ErrorCode.internal_error
    http_status = 500
    default_headers: dict[str, str] = {}  # noqa: RUF012 (read, never mutated)

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        http_status: int | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = {**self.default_headers, **(headers or {})}
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status


class InputError(SttError):
    """The caller's input is wrong; retrying cannot help."""

    code = ErrorCode.invalid_input
    http_status = 400


class EmptyFile(InputError):
    code = ErrorCode.empty_file


class InvalidAudio(InputError):
    code = ErrorCode.invalid_audio
    http_status = 415


class UnsupportedAudio(InvalidAudio):
    """Audio, but outside what the service decodes (sample rate, channel count)."""

    code = ErrorCode.unsupported_audio


class NoAudioStream(InputError):
    code = ErrorCode.no_audio_stream
    http_status = 422


class CorruptAudio(InputError):
    code = ErrorCode.corrupt_audio
    http_status = 422


class TruncatedAudio(InputError):
    code = ErrorCode.truncated_audio
    http_status = 422


class EmptyAudio(InputError):
    code = ErrorCode.empty_audio
    http_status = 422


class AudioTooShort(InputError):
    code = ErrorCode.audio_too_short
    http_status = 422


class FileTooLarge(InputError):
    code = ErrorCode.file_too_large
    http_status = 413


class TooManyFiles(InputError):
    code = ErrorCode.too_many_files
    http_status = 413

    @classmethod
    def in_batch(cls, limit: int) -> TooManyFiles:
        return cls(f"a batch holds at most {limit} files (STT_MAX_BATCH_ITEMS)")


class AudioTooLong(InputError):
    code = ErrorCode.audio_too_long
    http_status = 422


class InvalidMetadata(InputError):
    """The `metadata` field is not a small, shallow JSON object (NaN and Infinity are not JSON)."""

    code = ErrorCode.invalid_metadata


class InvalidWebhookUrl(InputError):
    code = ErrorCode.invalid_webhook_url
    http_status = 422


class InvalidArchive(InputError):
    code = ErrorCode.invalid_archive
    http_status = 422


class UnknownModel(InputError):
    code = ErrorCode.unknown_model


class NotFound(SttError):
    code = ErrorCode.not_found
    http_status = 404


class JobNotFound(NotFound):
    code = ErrorCode.job_not_found


class BatchNotFound(NotFound):
    code = ErrorCode.batch_not_found


class Conflict(SttError):
    code = ErrorCode.conflict
    http_status = 409


class Unauthorized(SttError):
    """No API key, or one that is unknown or revoked."""

    code = ErrorCode.invalid_api_key
    http_status = 401
    default_headers = {"WWW-Authenticate": 'Bearer realm="stt"'}  # noqa: RUF012


class TooManyRequests(SttError):
    """A rate limit or quota; `retry_after_s` becomes the Retry-After header."""

    code = ErrorCode.rate_limited
    http_status = 429

    def __init__(
        self, message: str, *, retry_after_s: int, code: ErrorCode | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, code=code, headers={**(headers or {}), "Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class TransientError(SttError):
    """A dependency is briefly unavailable; the same work may succeed later."""

    code = ErrorCode.service_unavailable
    http_status = 503
    default_headers = {"Retry-After": "5"}  # noqa: RUF012


class TranscriptExpired(SttError):
    """The job succeeded, and its transcript has since been deleted under the retention policy."""

    code = ErrorCode.transcript_expired
    http_status = 410


class AudioExpired(SttError):
    """The job's audio has been deleted under the retention policy (or is gone from storage)."""

    code = ErrorCode.audio_expired
    http_status = 410


class UrlForbidden(InputError):
    """An `audio_url` the service must not fetch: not http(s), credentials in it, a non-public address."""

    code = ErrorCode.url_forbidden
    http_status = 422


class UrlUnreachable(InputError):
    """The `audio_url` could not be fetched: no such host, refused, an HTTP error, or too slow."""

    code = ErrorCode.url_unreachable
    http_status = 422


class UrlTooLarge(InputError):
    code = ErrorCode.url_too_large
    http_status = 413


class StorageUnavailable(TransientError):
    """The audio store (a directory or an S3-compatible bucket) cannot be reached or refused the request."""

    code = ErrorCode.storage_unavailable


class AudioMissing(InputError):
    """The job's stored audio is gone (deleted, or lost with the store)."""

    code = ErrorCode.audio_missing


class AudioCorrupt(InputError):
    """The stored audio no longer matches the sha256 recorded at upload."""

    code = ErrorCode.audio_corrupt


class TranscriptionTimeout(SttError):
    """POST /v1/audio/transcriptions waited long enough: the body names the job (`job_id`) and
    `Location` its URL, since the job goes on."""

    code = ErrorCode.transcription_timeout
    http_status = 504

    def __init__(self, job_id: str, status: str, timeout: float) -> None:
        super().__init__(
            f"job {job_id} is still {status} after {timeout:.0f} s; poll GET /v1/jobs/{job_id}",
            fields={"job_id": job_id},
            headers={"Location": f"/v1/jobs/{job_id}"},
        )


class ModelError(SttError):
    """A model folder is incomplete or corrupt: an operator must fix the deployment."""

    code = ErrorCode.model_error


def is_transient(exc: BaseException) -> bool:
    """The one classification of failures a retry may cure (a dependency down or timing out)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, InputError | ModelError):
        return False
    return isinstance(
        exc,
        TransientError
        | OperationalError
        | InterfaceError
        | RedisConnectionError
        | RedisTimeoutError
        | ConnectionError
        | TimeoutError,
    )
