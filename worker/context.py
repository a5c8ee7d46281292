"""Builds the per-process worker context: database, storage and the preloaded, warmed recognizers."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from stt_common import events, jobs
from stt_common.db import make_engine, make_session_factory
from stt_common.errors import ModelError
from stt_common.model_folder import list_models
from stt_common.settings import Settings
from stt_common.storage import open_storage
from stt_common.transcript import Word
from worker.formatting import CONFIG_FILE, Formatter
from worker.recognizer import Recognizer
from worker.runner import WorkerContext

log = logging.getLogger(__name__)


def load_recognizers(settings: Settings) -> dict[str, Recognizer]:
    available = list_models(settings.models_dir)
    wanted = settings.worker_models or sorted(available)
    missing = [name for name in wanted if name not in available]
    if missing or not wanted:
        raise ModelError(f"models not found in {settings.models_dir}: {missing or 'none at all'}")
    recognizers = {}
    for name in wanted:
        started = time.perf_counter()
        recognizer = Recognizer.load(
            available[name][0],
            variant=settings.model_variant,
            threads=settings.onnx_threads,
            window_seconds=settings.window_seconds,
            overlap_seconds=settings.window_overlap_seconds,
            pause_seconds=settings.pause_seconds,
            vad_aggressiveness=settings.vad_aggressiveness,
            segment_rules=settings.segment_rules,
            language_model=settings.language_model,
        )
        recognizer.warm_up(settings.warmup_seconds)
        recognizers[name] = recognizer
        log.info(
            "model %s loaded and warmed in %.2f s (%d threads)",
            name,
            time.perf_counter() - started,
            settings.onnx_threads,
        )
    return recognizers


def load_formatter(settings: Settings) -> Formatter | None:
    """The formatting stage, warmed. Required when formatting is the default; optional otherwise."""
    if not settings.format_text and not (settings.formatter_dir / CONFIG_FILE).is_file():
        return None
    formatter = Formatter.load(settings.formatter_dir)
    formatter.format_words([Word("saat", 0.0, 0.1, 1.0), Word("onda", 0.1, 0.2, 1.0)])
    return formatter


def build_context(settings: Settings, publish: Callable[[list[uuid.UUID]], None]) -> WorkerContext:
    factory = make_session_factory(make_engine(settings.database_url))
    events.publish_after_commit(factory, publish)
    context = WorkerContext(
        settings=settings,
        session_factory=factory,
        storage=open_storage(settings),
        recognizers=load_recognizers(settings),
        formatter=load_formatter(settings),
    )
    try:
        with factory() as session:
            jobs.rehearse(session, settings.job_lease_seconds)
    except Exception as exc:  # jobs retry on database errors anyway
        log.warning("database warm-up failed: %s", exc.__class__.__name__)
    return context
