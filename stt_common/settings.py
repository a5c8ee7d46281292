"""One settings class for every deployable, read from `STT_*` environment variables (or a .env file).

Every default works on a single machine: a SQLite file, ./data storage, Redis on localhost and the
bundled model. docs/CONFIGURATION.md lists the same fields for operators.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stt_common.transcript import SegmentRules

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./data/stt.db",
        description="SQLAlchemy URL. SQLite by default; `postgresql+psycopg://user@host/db` in production.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis) URL.")
    storage_url: str | None = Field(
        None,
        description="Where uploaded audio lives: `s3://BUCKET/PREFIX` for any S3-compatible store (credentials, "
        "region and endpoint from the standard AWS_* variables or credential chain), or a directory. "
        "Unset: `storage_dir`.",
    )
    storage_dir: Path = Field(Path("./data/storage"), description="Directory for uploaded audio, unless `storage_url`.")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="How bucket names reach an S3 endpoint: `auto` is path style when AWS_ENDPOINT_URL is set "
        "(MinIO, Ceph, Garage), virtual-hosted otherwise (AWS).",
    )
    models_dir: Path = Field(REPO_ROOT / "models", description="Directory holding one folder per model.")
    default_model: str = Field("tr-espeak-small", description="Model used when a job names none.")
    worker_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models each worker process preloads; empty means every model in `models_dir`.",
    )
    model_variant: str = Field("int8", description="`int8` (model.int8.onnx) or `fp32` (model.onnx).")
    language_model: bool = Field(
        True,
        description="Decode with a model's language model when its folder has one (a beam search: "
        "fewer word errors, more decoding time); false decodes greedily.",
    )
    format_text: bool = Field(
        True,
        description="Format transcripts (punctuation, capitals, numbers as digits, apostrophes) unless a job "
        "says `format_text=false`; the recognizer's own text stays in `raw_text`.",
    )
    formatter_dir: Path = Field(
        REPO_ROOT / "models" / "formatter-tr",
        description="The formatting stage's folder (its tagger and proper-noun lexicon; training/punctuation.py).",
    )
    max_upload_bytes: int = Field(1024 * 1024 * 1024, description="Largest accepted upload, in bytes.")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request line and its headers must arrive within this many seconds of the "
        "connection opening (or of the previous response); slower connections are closed (`python -m api.serve`).",
    )
    body_idle_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest wait for the next piece of a request body, in seconds; then 408 `request_timeout`.",
    )
    body_min_bytes_per_second: int = Field(
        16 * 1024,
        ge=1,
        description="Past its first `body_idle_timeout_seconds`, a request body must average at "
        "least this many bytes per second (16 KiB/s: 1 GB in about 18 hours); slower ones get 408 `request_timeout`.",
    )
    max_audio_seconds: float = Field(
        4 * 3600.0, description="Longest accepted audio, in seconds (checked on upload and while decoding)."
    )
    pause_seconds: float = Field(
        0.3, ge=0, description="Audio is cut at pauses this long (s), found by webrtcvad; 0 = never."
    )
    vad_aggressiveness: int = Field(
        2, ge=0, le=3, description="webrtcvad mode: 0 keeps the most audio as speech, 3 the least."
    )
    window_seconds: float = Field(
        30.0,
        gt=0,
        description="Speech running longer than this without a pause is transcribed in "
        "overlapping windows of this length, in seconds.",
    )
    window_overlap_seconds: float = Field(
        4.0, gt=0, description="Overlap of consecutive windows, in seconds (half of it is context on each side)."
    )
    progress_interval_seconds: float = Field(
        1.0, ge=0, description="Least time between two progress updates of a running job, in seconds."
    )
    segment_pause_seconds: float = Field(0.5, gt=0, description="A pause this long (s) ends a subtitle segment.")
    segment_max_seconds: float = Field(7.0, gt=0, description="Longest subtitle segment, in seconds.")
    segment_max_chars: int = Field(84, ge=10, description="Longest subtitle segment, in characters.")
    openai_wait_seconds: float = Field(
        600.0, gt=0, description="How long POST /v1/audio/transcriptions waits for its job before a 504, in s."
    )
    openai_max_waiting: int = Field(
        16,
        ge=1,
        description="Requests of one tenant that may wait at once for their transcription in "
        "POST /v1/audio/transcriptions, per api process; beyond it, 429 `too_many_waiting_requests`.",
    )
    max_batch_items: int = Field(1000, ge=1, description="Most files in one batch (multipart parts or zip members).")
    webhook_secret: str | None = Field(
        None,
        description="`whsec_...` secret that signs every tenant's webhooks; unset (the default, and the "
        "right choice with several tenants): each tenant gets its own, made and kept in the database "
        "(`GET /v1/webhooks/secret`, `python -m api.admin webhook-secret --tenant T`).",
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Deadline of one whole webhook attempt (address lookup, connect, send, the "
        "answer's status and first KB), in s; however slowly the receiver answers, the attempt ends then.",
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Delays before each retry of a failed webhook, in seconds (each ±20% jitter); the default "
        "spans 27.6 h over 8 attempts.",
    )
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names, addresses or networks (CIDR) webhooks and `audio_url` downloads may reach even "
        "though they are not public (loopback, private, link-local). Empty: public addresses only.",
    )
    webhook_sweep_seconds: float = Field(
        10.0, gt=0, description="How often the webhooks worker looks for due retries and lost messages, in s."
    )
    webhook_concurrency: int = Field(8, ge=1, description="Webhook deliveries sent at once per webhooks worker.")
    worker_concurrency: int = Field(1, ge=1, description="Worker processes per Celery worker.")
    worker_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per worker process; 0 = cores / concurrency."
    )
    warmup_seconds: float = Field(5.0, ge=0, description="Length of the warm-up clip, in seconds; 0 = none.")
    task_max_retries: int = Field(
        5,
        ge=0,
        description="Retries of a transient failure (database or broker unavailable) before a job fails; "
        "they wait 2, 4, 8, 16, 32 s, each 50–100% of that.",
    )
    task_retry_backoff_max: int = Field(60, ge=1, description="Cap on the retry back-off, in seconds.")
    job_lease_seconds: int = Field(
        60,
        ge=2,
        description="A worker holds its running job on a lease it renews every third of this, in "
        "seconds; the job of a worker that died is taken over once the lease runs out.",
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts a job gets when its workers die under it (killed, out of memory); then "
        "it fails with `worker_lost`. Retries of transient failures count too.",
    )
    reaper_interval_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the webhooks worker's reaper re-enqueues jobs that have no live queue "
        "message (lost publish, Redis restarted empty, dead worker), in seconds.",
    )
    reaper_grace_seconds: float = Field(
        60.0,
        ge=0,
        description="A queued job younger than this is never re-enqueued by the reaper, in seconds "
        "(its first message may still be on the way).",
    )
    task_time_limit: int = Field(4 * 3600, ge=10, description="Hard time limit of one transcription task, in s.")
    broker_visibility_timeout: int = Field(
        3600, ge=10, description="Seconds before Redis redelivers an unacknowledged task message."
    )
    broker_restore_interval: int = Field(
        10, ge=1, description="Seconds between sweeps that return such messages to the queue."
    )

    auth_enabled: bool = Field(
        True,
        description="Every /v1 request needs an API key (`Authorization: Bearer stt_...`; create one with "
        "`python -m api.admin keys create --tenant NAME`). `false` serves everyone as one tenant: local use only.",
    )
    rate_limit_per_minute: int = Field(
        600,
        ge=1,
        description="Requests per minute each API key may make (a key may carry its own); beyond it, "
        "429 `rate_limited` with Retry-After.",
    )
    max_active_jobs: int = Field(
        5000,
        ge=1,
        description="Jobs one tenant may have queued or processing at once; a submission beyond it "
        "gets 429 `quota_exceeded` with Retry-After.",
    )
    audio_retention_seconds: float | None = Field(
        None,
        ge=0,
        description="How long a job's audio is kept after the job ends, in seconds (0: deleted as soon as it "
        "ends). Unset: until the job is deleted. A tenant's own policy (`python -m api.admin retention`) wins.",
    )
    transcript_retention_seconds: float | None = Field(
        None,
        ge=0,
        description="How long a job's transcript is kept after the job ends, in seconds; the job stays, "
        "saying when it was purged. Unset: until the job is deleted. A tenant's own policy wins.",
    )
    retention_interval_seconds: float = Field(
        300.0, gt=0, description="How often the webhooks worker purges expired audio and transcripts, in seconds."
    )
    url_fetch_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="A job's `audio_url` must be downloaded within this many seconds (all of it, redirects "
        "included); then the job fails `url_unreachable`.",
    )
    ready_requires_worker: bool = Field(
        True,
        description="GET /ready also needs a worker with the default model warm. Set false where workers "
        "scale to zero on the queue's length (KEDA): the api must take jobs for a worker to be started.",
    )
    metrics_token: str | None = Field(
        None,
        description="When set, GET /metrics needs `Authorization: Bearer <this token>` (it shows counts "
        "across all tenants). Unset: /metrics is open; keep it off the public network.",
    )
    metrics_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="GET /metrics serves the same reading for this many seconds, however often it "
        "is scraped; 0 = read on every scrape.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`, or `json`: one JSON object per line with time, level, logger, process, "
        "message and the running job's `job_id`.",
    )
    log_level: str = Field("INFO", description="Least severe level logged: DEBUG, INFO, WARNING, ERROR.")

    @field_validator("worker_models", "webhook_retry_schedule", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """A list setting is a JSON list or a comma-separated one: `127.0.0.1,10.0.0.0/8`."""
        if not isinstance(value, str):
            return value
        if value.strip().startswith("["):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not a JSON list ({exc}); a comma-separated list works too") from None
        return [item.strip() for item in value.split(",") if item.strip()]

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.model_variant not in ("int8", "fp32"):
            raise ValueError("STT_MODEL_VARIANT must be 'int8' or 'fp32'")
        if any(delay < 0 for delay in self.webhook_retry_schedule):
            raise ValueError("STT_WEBHOOK_RETRY_SCHEDULE holds delays in seconds, none negative")
        if self.window_overlap_seconds * 2 > self.window_seconds:
            raise ValueError("STT_WINDOW_OVERLAP_SECONDS must be at most half of STT_WINDOW_SECONDS")
        return self

    @property
    def segment_rules(self) -> SegmentRules:
        return SegmentRules(
            pause_s=self.segment_pause_seconds, max_seconds=self.segment_max_seconds, max_chars=self.segment_max_chars
        )

    @property
    def onnx_threads(self) -> int:
        """Intra-op threads so that threads x concurrency does not exceed the cores by default."""
        if self.worker_threads:
            return self.worker_threads
        return max(1, (os.cpu_count() or 1) // self.worker_concurrency)


@lru_cache
def get_settings() -> Settings:
    return Settings()
