"""Liveness, readiness and the model catalogue."""

from __future__ import annotations

import hmac
import math
import threading
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from api.auth import authenticate, bearer_token
from api.deps import SessionDep, SettingsDep
from api.schemas import ErrorBody, ModelList, ModelOut, ReadyOut, error_responses
from stt_common import readiness
from stt_common.errors import ErrorCode, NotFound, StorageUnavailable, TransientError, Unauthorized
from stt_common.metrics import ServiceCollector
from stt_common.model_folder import MANIFEST, Manifest, list_models
from stt_common.settings import Settings

router = APIRouter()


@router.get("/health", tags=["system"])
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyOut, tags=["system"], responses={503: {"model": ReadyOut}})
def ready(request: Request, session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """Readiness: the database, the broker and the audio store answer, and (unless
    STT_READY_REQUIRES_WORKER=false) at least one worker process has the default model loaded and warmed."""
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        client: Redis = request.app.state.redis  # one client (and its connection pool) for every call
        client.ping()
        checks["broker"] = "ok"
        if settings.ready_requires_worker:
            warm = readiness.ready_models(client).get(settings.default_model, 0)
            checks["workers"] = "ok" if warm else f"error: no worker has {settings.default_model} warm yet"
    except Exception as exc:
        checks.setdefault("broker", f"error: {exc.__class__.__name__}")
        if settings.ready_requires_worker:
            checks["workers"] = "error: broker unreachable"
    try:
        request.app.state.storage.check()
        checks["storage"] = "ok"
    except StorageUnavailable as exc:
        checks["storage"] = f"error: {exc.message}"
    ok = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/v1/models",
    response_model=ModelList,
    tags=["models"],
    dependencies=[Depends(authenticate)],
    responses=error_responses(),
)
def models(settings: SettingsDep) -> ModelList:
    """The models this deployment serves, as OpenAI's list of models (each `id` is a `model` to ask for)."""
    return ModelList(
        data=[_model_out(settings, name, folder, m) for name, (folder, m) in list_models(settings.models_dir).items()]
    )


@router.get(
    "/v1/models/{model_id}",
    response_model=ModelOut,
    tags=["models"],
    dependencies=[Depends(authenticate)],
    responses=error_responses(404),
)
def model(settings: SettingsDep, model_id: str) -> ModelOut:
    """One served model, as OpenAI's `GET /v1/models/{model}` answers."""
    found = list_models(settings.models_dir).get(model_id)
    if found is None:
        raise NotFound(f"no served model {model_id[:128]!r}; GET /v1/models lists them", code=ErrorCode.model_not_found)
    return _model_out(settings, model_id, *found)


def _model_out(settings: Settings, name: str, folder: Path, manifest: Manifest) -> ModelOut:
    return ModelOut(
        id=name,
        created=int((folder / MANIFEST).stat().st_mtime),
        name=name,
        language=manifest.language,
        sample_rate=manifest.sample_rate,
        variants=manifest.variants(),
        default=name == settings.default_model,
        description=manifest.description,
        metrics=manifest.metrics,
    )


def metrics_registry(redis_url: str, session_factory: sessionmaker[Session], ttl_s: float) -> MetricsCache:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(redis_url, session_factory))
    ProcessCollector(registry=registry)  # this api process's CPU, memory and open files
    return MetricsCache(registry, ttl_s)


class MetricsCache:
    """One reading of the registry served for `ttl_s`: scrapes in between cost nothing, and concurrent
    ones wait for a single reading instead of each querying the database and Redis."""

    def __init__(self, registry: CollectorRegistry, ttl_s: float) -> None:
        self.registry, self.ttl_s = registry, ttl_s
        self.lock = threading.Lock()
        self.body, self.read_at = b"", -math.inf

    def read(self) -> bytes:
        with self.lock:
            if time.monotonic() - self.read_at >= self.ttl_s:
                self.body = generate_latest(self.registry)
                self.read_at = time.monotonic()
            return self.body


@router.get(
    "/metrics",
    tags=["system"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"model": ErrorBody}},
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics of the whole service: queue depth, jobs queued and processing, finished jobs by
    status and error code, processing time, real-time factor and queue wait histograms, webhook attempts
    by outcome (docs/OBSERVABILITY.md). With `STT_METRICS_TOKEN` set, it needs that bearer token."""
    if settings.metrics_token:
        token = bearer_token(request.headers)
        if token is None or not hmac.compare_digest(token.encode(), settings.metrics_token.encode()):
            raise Unauthorized(
                "GET /metrics needs `Authorization: Bearer <STT_METRICS_TOKEN>`", code=ErrorCode.invalid_metrics_token
            )
    try:
        body = request.app.state.metrics.read()
    except RedisError as exc:
        raise TransientError(
            "the broker is unavailable; metrics cannot be read", code=ErrorCode.broker_unavailable
        ) from exc
    return Response(body, media_type=CONTENT_TYPE_LATEST)
