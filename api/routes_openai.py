"""POST /v1/audio/transcriptions, shaped like OpenAI's, so existing OpenAI clients work unchanged.

It goes through the same queue as every job: the upload is accepted and enqueued (on a worker thread),
then the request waits (up to `STT_OPENAI_WAIT_SECONDS`) for a worker to finish it, on the event loop:
a waiting request holds no thread, so waits cannot starve other requests of the thread pool. One tenant
may have `STT_OPENAI_MAX_WAITING` requests waiting in one api process; beyond that, 429
`too_many_waiting_requests`. A request that outwaits the limit gets 504 with the job id; the job goes on
and can be polled at /v1/jobs/{id}.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import islice
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State as AppState

from api.auth import PrincipalDep, authenticate
from api.routes_jobs import render_transcript
from api.schemas import error_responses
from api.submission import JobOptions, job_options, submit
from stt_common.errors import ErrorCode, InputError, JobNotFound, TooManyRequests, TranscriptionTimeout
from stt_common.model_folder import list_models
from stt_common.models import Job, JobStatus
from stt_common.settings import Settings
from stt_common.transcript import Transcript

router = APIRouter(prefix="/v1/audio", tags=["openai-compatible"], dependencies=[Depends(authenticate)])

OPENAI_MODEL_NAMES = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}  # → the default model
LANGUAGE_NAMES = {"tr": "turkish"}


@router.post("/transcriptions", responses=error_responses(400, 408, 413, 415, 422, 504))
async def create_transcription(
    principal: PrincipalDep,
    request: Request,
    file: Annotated[UploadFile, File(description="The audio, in any format POST /v1/jobs accepts.")],
    model: Annotated[
        str,
        Form(
            max_length=128,
            description="A served model, or an OpenAI model name (whisper-1, ...) for the default model.",
        ),
    ],
    response_format: Annotated[Literal["json", "text", "srt", "vtt", "verbose_json"], Form()] = "json",
    language: Annotated[str | None, Form(max_length=16, description="ISO-639-1; must be the model's.")] = None,
    timestamp_granularities: Annotated[
        list[Literal["word", "segment"]] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    prompt: Annotated[str | None, Form(max_length=4096, description="Accepted and ignored (CTC models).")] = None,  # noqa: ARG001
    temperature: Annotated[float | None, Form(description="Accepted and ignored (greedy CTC).")] = None,  # noqa: ARG001
) -> Response:
    """Transcribe one file and answer with the transcript, as OpenAI's endpoint does."""
    state: AppState = request.app.state
    settings: Settings = state.settings
    name = _served_model(settings, model)
    served_language = _language(settings, name)
    if language and served_language and language.lower() != served_language.lower():
        raise InputError(
            f"model {name!r} transcribes {served_language!r}, not {language!r}", code=ErrorCode.unsupported_language
        )
    options = job_options(settings, principal.tenant, name, None, None, format_text=True)  # as OpenAI's text is
    async with _waiting_slot(principal.tenant, settings.openai_max_waiting):
        job_id = await run_in_threadpool(_submit, state, file.file, file.filename, options)
        job = await _wait(state, job_id, settings.openai_wait_seconds)
    if job.status != JobStatus.succeeded or job.result is None:
        raise InputError(
            job.error_message or f"the transcription was {job.status}",
            code=ErrorCode(job.error_code or ErrorCode.job_canceled),
            http_status=422,
        )
    transcript = Transcript.from_dict(job.result)
    if response_format in ("srt", "vtt"):
        return render_transcript(transcript, response_format)
    if response_format == "text":
        return render_transcript(transcript, "txt")
    if response_format == "json":
        return JSONResponse({"text": transcript.text})
    return JSONResponse(_verbose(transcript, served_language, set(timestamp_granularities or ["segment"])))


_waiting: Counter[str] = Counter()  # requests waiting for their job, by tenant, in this process


@asynccontextmanager
async def _waiting_slot(tenant: str, limit: int) -> AsyncIterator[None]:
    """Counted on the event loop's one thread, so no lock is needed."""
    if _waiting[tenant] >= limit:
        raise TooManyRequests(
            f"this tenant already has {limit} transcriptions waiting for their result; poll "
            "them as jobs (POST /v1/jobs) or retry when one has finished",
            retry_after_s=5,
            code=ErrorCode.too_many_waiting_requests,
        )
    _waiting[tenant] += 1
    try:
        yield
    finally:
        _waiting[tenant] -= 1
        if not _waiting[tenant]:
            del _waiting[tenant]


def _submit(state: AppState, upload: BinaryIO, filename: str | None, options: JobOptions) -> uuid.UUID:
    with state.session_factory() as session:
        return submit(session, state.storage, state.settings, state.celery, upload, filename, options).id


def _read(state: AppState, job_id: uuid.UUID) -> Job:
    """The row this request created, deleted or not: a job deleted while we wait is `canceled`, not gone."""
    with state.session_factory() as session:  # made with expire_on_commit=False: the row stays readable
        job: Job | None = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        session.expunge(job)
        return job


async def _wait(state: AppState, job_id: uuid.UUID, timeout: float) -> Job:
    """Poll the job's row until it ends: a few ms at first, backing off to a quarter second. Each read
    borrows a thread for a moment; the waits in between hold none."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        job = await run_in_threadpool(_read, state, job_id)
        if JobStatus(job.status).is_terminal:
            return job
        if time.monotonic() >= deadline:
            raise TranscriptionTimeout(str(job.id), job.status, timeout)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)


def _served_model(settings: Settings, requested: str) -> str:
    return settings.default_model if requested in OPENAI_MODEL_NAMES else requested


def _language(settings: Settings, model: str) -> str:
    found = list_models(settings.models_dir).get(model)
    return found[1].language if found else ""


def _verbose(transcript: Transcript, language: str, granularities: set[str]) -> dict[str, object]:
    """OpenAI's verbose_json. CTC has no token log-probabilities or no-speech head: `avg_logprob` is
    the mean log confidence of the segment's words, `no_speech_prob` is 0, `tokens` is empty."""
    body: dict[str, object] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(language, language),
        "duration": transcript.duration_s,
        "text": transcript.text,
        "usage": {"type": "duration", "seconds": math.ceil(transcript.duration_s)},
    }
    if "segment" in granularities:
        segments = []
        words = iter(transcript.words)
        for index, seg in enumerate(transcript.segments):
            confidences = [w.confidence for w in islice(words, seg.text.count(" ") + 1)]
            encoded = seg.text.encode()
            segments.append(
                {
                    "id": index,
                    "seek": 0,
                    "start": seg.start,
                    "end": seg.end,
                    "text": seg.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": sum(math.log(max(c, 1e-6)) for c in confidences) / max(1, len(confidences)),
                    "compression_ratio": len(encoded) / max(1, len(zlib.compress(encoded))),
                    "no_speech_prob": 0.0,
                }
            )
        body["segments"] = segments
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]
    return body
