"""The FastAPI application. Serve it with `python -m api.serve` (settings from STT_* variables)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import httpx
from fastapi import FastAPI
from redis import Redis
from starlette.formparsers import MultiPartParser

from api.auth import Authentication, make_limiter
from api.errors import install_error_handlers
from api.limits import BodyLimits, BodyPace
from api.routes_batches import router as batches_router
from api.routes_jobs import router as jobs_router
from api.routes_openai import router as openai_router
from api.routes_system import metrics_registry
from api.routes_system import router as system_router
from api.routes_webhooks import router as webhooks_router
from api.web import mount_page
from stt_common import __version__, events, jobs, logs
from stt_common.db import make_engine, make_session_factory
from stt_common.queue import TRANSCRIBE_QUEUE, make_celery, publish_deliveries
from stt_common.settings import Settings, get_settings
from stt_common.storage import open_storage

log = logging.getLogger(__name__)

# Form fields are kept in memory: no route has more than a dozen, none over 4 KB (Starlette allows 1000
# of 1 MB each). File parts are spooled to disk past 64 KB instead of Starlette's 1 MB, so a batch of
# 1000 small parts holds at most 64 MB in memory.
MAX_FORM_FIELDS, MAX_FIELD_BYTES, BATCH_FIELD_BYTES = 32, 64 * 1024, 8 * 1024
MultiPartParser.spool_max_size = 64 * 1024


class FormLimits(TypedDict, total=False):
    """What a route's multipart form may hold (FastAPI's `include_router(form_limits=...)`)."""

    max_fields: int
    max_part_size: int
    max_files: int


def form_limits(
    max_files: int = 1, max_fields: int = MAX_FORM_FIELDS, max_part_size: int = MAX_FIELD_BYTES
) -> FormLimits:
    return {"max_fields": max_fields, "max_part_size": max_part_size, "max_files": max_files}


def warm_up(app: FastAPI) -> None:
    """Open the database and broker connections now, so the first request does not pay for them."""
    celery = app.state.celery
    try:
        with app.state.session_factory() as session:
            jobs.rehearse(session, app.state.settings.job_lease_seconds)
        celery.finalize(auto=True)
        _ = celery.backend, celery.amqp.send_task_message  # both are built lazily on the first publish
        with celery.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1, timeout=2)
            producer.maybe_declare(celery.amqp.queues[TRANSCRIBE_QUEUE])
    except Exception as exc:  # /ready reports what is down; starting up anyway is fine
        log.warning("warm-up incomplete: %s", exc.__class__.__name__)


async def warm_routes(app: FastAPI) -> None:
    """Send the app two requests that write nothing (an empty upload, an unknown job) so that the
    first real client does not pay for building the middleware stack, multipart parsing and
    validators."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
        await client.post("/v1/jobs", files={"file": ("warm-up.wav", b"", "audio/wav")})
        await client.get(f"/v1/jobs/{uuid.uuid4()}")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.log_format == "json":
            logs.configure_json(settings.log_level)
        engine = make_engine(settings.database_url)
        app.state.settings = settings
        app.state.session_factory = make_session_factory(engine)
        app.state.storage = open_storage(settings)
        app.state.celery = make_celery(settings)
        events.publish_after_commit(app.state.session_factory, lambda ids: publish_deliveries(app.state.celery, ids))
        app.state.metrics = metrics_registry(
            settings.redis_url, app.state.session_factory, settings.metrics_cache_seconds
        )
        app.state.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        app.state.limiter = make_limiter(settings.redis_url)
        if not settings.auth_enabled:
            log.warning(
                "authentication is OFF (STT_AUTH_ENABLED=false): anyone who can reach this api can read "
                "and delete every job. Use this only on your own machine."
            )
        warm_up(app)
        await warm_routes(app)
        yield
        engine.dispose()

    app = FastAPI(
        title="Turkish speech-to-text",
        version=__version__,
        description="Asynchronous transcription jobs: POST audio, get a job id, poll for the result.",
        lifespan=lifespan,
    )
    # The last added runs first: body limits wrap everything, then the caller is identified, both before
    # a route reads the body.
    app.add_middleware(Authentication)
    app.add_middleware(
        BodyLimits,
        max_upload_bytes=settings.max_upload_bytes,
        pace=BodyPace(settings.body_idle_timeout_seconds, settings.body_min_bytes_per_second),
    )
    install_error_handlers(app)
    app.include_router(jobs_router, form_limits=form_limits())
    # A batch may hold up to STT_MAX_BATCH_ITEMS file parts (+1: the archive) or `audio_urls` fields; its
    # fields are URLs and options, 8 KB at most each, so a full batch's fields hold 8 MB at most.
    app.include_router(
        batches_router,
        form_limits=form_limits(
            max_files=settings.max_batch_items + 1,
            max_fields=settings.max_batch_items + MAX_FORM_FIELDS,
            max_part_size=BATCH_FIELD_BYTES,
        ),
    )
    app.include_router(webhooks_router)
    app.include_router(openai_router, form_limits=form_limits())
    app.include_router(system_router)
    mount_page(app)
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
