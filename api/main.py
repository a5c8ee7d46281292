"""The FastAPI application. Run with `uvicorn api.main:app` (settings from STT_* variables)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import UploadSizeLimit
from api.routes_jobs import router as jobs_router
from api.routes_system import router as system_router
from stt_common.db import make_engine, make_session_factory
from stt_common.queue import make_celery
from stt_common.settings import Settings, get_settings
from stt_common.storage import LocalStorage


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.settings = settings
        app.state.session_factory = make_session_factory(engine)
        app.state.storage = LocalStorage(settings.storage_dir)
        app.state.celery = make_celery(settings)
        yield
        engine.dispose()

    app = FastAPI(
        title="Turkish speech-to-text",
        version="0.1.0",
        description="Asynchronous transcription jobs: POST audio, get a job id, poll for the result.",
        lifespan=lifespan,
    )
    app.add_middleware(UploadSizeLimit, max_upload_bytes=settings.max_upload_bytes)
    install_error_handlers(app)
    app.include_router(jobs_router)
    app.include_router(system_router)
    return app


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
