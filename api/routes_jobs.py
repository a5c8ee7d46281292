"""/v1/jobs: submit audio, poll a job, list jobs, fetch a transcript or the audio, delete a job."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import Field
from starlette.background import BackgroundTask
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from api import submission
from api.auth import PrincipalDep, authenticate
from api.deps import CeleryDep, SessionDep, SettingsDep, StorageDep
from api.idempotency import REPLAY_HEADER, Idempotency, made_once
from api.json_body import JsonOptions, read_json
from api.schemas import JobList, error_responses
from api.submission import FormatTextField, job_options, submit, submit_url
from stt_common import jobs
from stt_common.audio import MEDIA_TYPES
from stt_common.errors import AudioExpired, AudioMissing, Conflict, ErrorCode, InputError, TranscriptExpired
from stt_common.models import Job, JobStatus
from stt_common.resources import JobOut, JobSummaryOut, ResultOut
from stt_common.subtitles import to_srt, to_vtt
from stt_common.transcript import Transcript

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(authenticate)])


class JobFromUrl(JsonOptions):
    """POST /v1/jobs as JSON: the audio by URL, with the same options as the form."""

    audio_url: str = Field(max_length=2048, description="An http(s) URL the service downloads the audio from.")


MAX_JSON_BYTES = 16 * 1024  # a URL and the options


async def json_job(request: Request) -> JobFromUrl | None:
    """The JSON body of POST /v1/jobs, if it has one."""
    return await read_json(request, JobFromUrl, MAX_JSON_BYTES)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=error_responses(400, 408, 409, 413, 415, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": JobFromUrl.model_json_schema()}}}},
)
def create_job(
    principal: PrincipalDep,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    celery: CeleryDep,
    from_json: Annotated[JobFromUrl | None, Depends(json_job)],
    file: Annotated[
        UploadFile | None,
        File(description="The audio: wav, flac, ogg/vorbis, opus, mp3, m4a/aac, webm, or an mp4/mkv video's sound."),
    ] = None,
    audio_url: Annotated[
        str | None,
        Form(max_length=2048, description="Instead of `file`: an http(s) URL the service downloads the audio from."),
    ] = None,
    model: Annotated[str | None, Form(max_length=128, description="Model name; see GET /v1/models.")] = None,
    webhook_url: Annotated[
        str | None, Form(description="Receives a signed `job.succeeded` or `job.failed` event (docs/WEBHOOKS.md).")
    ] = None,
    metadata: Annotated[
        str | None,
        Form(
            description="A JSON object of your own (at most 4 KB and 16 levels), returned with the job and its events."
        ),
    ] = None,
    format_text: FormatTextField = None,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=255, description="Retry-safe: the same key and request return the same job."),
    ] = None,
) -> Response:
    """Accept an audio file, or the URL of one (the form's `audio_url`, or a JSON body), and queue it for
    transcription. Returns at once with the queued job; a URL is downloaded by the worker."""
    if from_json is not None:
        audio_url, model, webhook_url = from_json.audio_url, from_json.model, from_json.webhook_url
        metadata, format_text = from_json.metadata_field(), from_json.format_text
    if (file is None) == (audio_url is None):
        raise InputError(
            "give the audio as `file` or as `audio_url`, one of them", code=ErrorCode.validation_error, http_status=422
        )
    options = job_options(settings, principal.tenant, model, webhook_url, metadata, format_text)
    fields = {"model": model, "webhook_url": webhook_url, "metadata": metadata, "audio_url": audio_url}
    if format_text is not None:  # keys made before the field existed still match their requests
        fields["format_text"] = str(format_text)
    uploads = [file.file] if file is not None else []
    idempotency = Idempotency.of(principal.tenant, idempotency_key, "POST /v1/jobs", fields, uploads)

    def create() -> Job:
        if file is not None:
            return submit(session, storage, settings, celery, file.file, file.filename, options, idempotency)
        assert audio_url is not None
        return submit_url(session, storage, settings, celery, audio_url, options, idempotency)

    job, replayed = made_once(
        session,
        idempotency,
        create=create,
        made=lambda key: jobs.get_job(session, key.job_id, principal.tenant) if key.job_id else None,
    )
    return _job_response(job, replayed=replayed)


def _job_response(job: Job, *, replayed: bool) -> Response:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(JobOut.of(job).model_dump_json(), status_code=202, media_type="application/json", headers=headers)


@router.get("", response_model=JobList, responses=error_responses(400, 422))
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    status: JobStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    """Jobs, newest first, with progress; results carry only the text (GET the job for words and
    segments). Follow `next_cursor` for older pages."""
    page = jobs.list_jobs(session, tenant=principal.tenant, status=status, cursor=cursor, limit=limit)
    return JobList(data=[JobSummaryOut.of(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
def get_job(principal: PrincipalDep, session: SessionDep, job_id: str) -> JobOut:
    """The job's status, progress, timings, and its result once it has succeeded."""
    return JobOut.of(jobs.get_job(session, job_id, principal.tenant))


TRANSCRIPT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


@router.get(
    "/{job_id}/transcript",
    responses={
        **error_responses(404, 409, 410, 422),
        200: {"content": {t.split(";")[0]: {} for t in TRANSCRIPT_TYPES.values()}},
    },
)
def get_transcript(
    principal: PrincipalDep, session: SessionDep, job_id: str, format: Literal["txt", "json", "srt", "vtt"] = "txt"
) -> Response:
    """The transcript of a succeeded job: plain text, JSON (text, timed words and segments), or
    SRT / WebVTT subtitles with one cue per segment."""
    job = jobs.get_job(session, job_id, principal.tenant)
    if job.transcript_purged_at is not None:
        purged = f"{job.transcript_purged_at:%Y-%m-%d %H:%M} UTC"
        raise TranscriptExpired(f"the transcript was deleted on {purged} under the retention policy")
    if job.status != JobStatus.succeeded or job.result is None:
        raise Conflict(
            f"the job is {job.status}; a transcript exists once it has succeeded", code=ErrorCode.job_not_succeeded
        )
    if format == "json":
        return Response(ResultOut.of(job.result).model_dump_json(), media_type=TRANSCRIPT_TYPES["json"])
    return render_transcript(Transcript.from_dict(job.result), format)


def render_transcript(transcript: Transcript, format: Literal["txt", "srt", "vtt"]) -> Response:
    """Plain text or subtitles, as both the jobs and the OpenAI-compatible routes serve them."""
    if format == "srt":
        body = to_srt(transcript.segments)
    elif format == "vtt":
        body = to_vtt(transcript.segments)
    else:
        body = transcript.text + "\n"
    return Response(body, media_type=TRANSCRIPT_TYPES[format])


@router.get(
    "/{job_id}/audio",
    responses={
        **error_responses(400, 404, 409, 410, 416),
        200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}},
        206: {"description": "The byte range asked for with `Range`."},
    },
)
def get_audio(
    request: Request, principal: PrincipalDep, session: SessionDep, storage: StorageDep, job_id: str
) -> Response:
    """The job's audio as it was uploaded (or fetched from its URL), for playing it beside the transcript;
    answers `Range` requests (206), so a player can seek without downloading it all."""
    job = jobs.get_job(session, job_id, principal.tenant)
    if job.audio_purged_at is not None:
        raise AudioExpired(
            f"the audio was deleted on {job.audio_purged_at:%Y-%m-%d %H:%M} UTC under the retention policy"
        )
    if job.audio_key is None:
        why = (
            "its URL could not be fetched"
            if job.status == JobStatus.failed
            else "it has not been fetched from its URL yet"
        )
        raise Conflict(f"the job has no audio: {why}", code=ErrorCode.audio_not_ready)
    cleanup = ExitStack()  # an object store's copy lives until the response has been sent
    try:
        path = cleanup.enter_context(storage.fetch(job.audio_key))
    except AudioMissing as exc:
        raise AudioExpired("the job's audio is no longer in storage") from exc
    try:
        check_range(request.headers.get("range"), path.stat().st_size)
    except BaseException:
        cleanup.close()
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(job.audio_format or "", "application/octet-stream"),
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(cleanup.close),
    )


def check_range(header: str | None, size: int) -> None:
    """Refuse a `Range` the file cannot answer with an error body of ours (Starlette, which serves the
    ranges, would answer such a header in plain text)."""
    if header is None:
        return
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InputError(f"the Range header is malformed: {exc.content}", code=ErrorCode.invalid_range) from exc
    except RangeNotSatisfiable as exc:
        raise InputError(
            f"the Range asked for starts past the audio's {size} bytes",
            code=ErrorCode.range_not_satisfiable,
            http_status=416,
            headers={"Content-Range": f"bytes */{size}"},
        ) from exc


@router.delete("/{job_id}", status_code=204, responses=error_responses(404))
def delete_job(principal: PrincipalDep, session: SessionDep, storage: StorageDep, job_id: str) -> Response:
    """Cancel the job if it has not finished, and delete its audio and transcript."""
    submission.remove(session, storage, job_id, principal.tenant)
    return Response(status_code=204)
