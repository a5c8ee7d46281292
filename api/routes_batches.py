"""/v1/batches: many files in one request, followed as one object, with results as JSONL or a zip of
subtitles."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from api import batches
from api.auth import PrincipalDep, authenticate
from api.deps import CeleryDep, SessionDep, SettingsDep, StorageDep
from api.idempotency import REPLAY_HEADER, Idempotency, made_once
from api.json_body import JsonOptions, read_json
from api.schemas import error_responses
from api.submission import FormatTextField, job_options
from stt_common import events
from stt_common.errors import TooManyFiles
from stt_common.models import Batch, Job, JobStatus
from stt_common.resources import BatchOut, JobOut
from stt_common.subtitles import to_srt, to_vtt
from stt_common.transcript import Transcript

router = APIRouter(prefix="/v1/batches", tags=["batches"], dependencies=[Depends(authenticate)])


class BatchFromUrls(JsonOptions):
    """POST /v1/batches as JSON: the audio by URL, with the same options as the form."""

    audio_urls: list[str] = Field(description="http(s) URLs the service downloads, one job each, in this order.")


JSON_OPTIONS_BYTES, JSON_BYTES_PER_URL = 16 * 1024, 2 * 1024 + 16  # a URL is at most 2 KB (webhooks.check_url)


async def json_batch(request: Request, settings: SettingsDep) -> BatchFromUrls | None:
    """The JSON body of POST /v1/batches, if it has one: room for the options and a full batch of URLs."""
    return await read_json(request, BatchFromUrls, JSON_OPTIONS_BYTES + settings.max_batch_items * JSON_BYTES_PER_URL)


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    responses=error_responses(400, 408, 409, 413, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": BatchFromUrls.model_json_schema()}}}},
)
def create_batch(
    principal: PrincipalDep,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    celery: CeleryDep,
    from_json: Annotated[BatchFromUrls | None, Depends(json_batch)],
    files: Annotated[
        list[UploadFile] | None, File(description="The audio files, one part each (repeat the field).")
    ] = None,
    archive: Annotated[
        UploadFile | None, File(description="A zip archive of audio files; its members follow any `files` parts.")
    ] = None,
    audio_urls: Annotated[
        list[str] | None,
        Form(description="http(s) URLs of audio the service downloads (repeat the field); they follow the files."),
    ] = None,
    model: Annotated[str | None, Form(max_length=128, description="Model for every file; see GET /v1/models.")] = None,
    webhook_url: Annotated[
        str | None,
        Form(
            description="Receives each job's `job.succeeded`/`job.failed` event and one "
            "`batch.completed` (docs/WEBHOOKS.md).",
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        Form(
            description="A JSON object of your own (at most 4 KB and 16 levels), returned with the batch and echoed "
            "on each of its jobs and their events."
        ),
    ] = None,
    format_text: FormatTextField = None,
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=255, description="Retry-safe: the same key and request return the same batch."),
    ] = None,
) -> Response:
    """Accept many audio files at once, as uploads, a zip archive, or URLs (the form's repeated
    `audio_urls`, or a JSON body). Each is checked on its own: bad ones are listed with their error code
    and the rest are queued. Returns at once with the batch and its items; URLs are downloaded by workers."""
    if from_json is not None:
        audio_urls, model, webhook_url = from_json.audio_urls, from_json.model, from_json.webhook_url
        metadata, format_text = from_json.metadata_field(), from_json.format_text
    options = job_options(settings, principal.tenant, model, webhook_url, metadata, format_text)
    uploads, urls = list(files or []), list(audio_urls or [])
    if len(uploads) + len(urls) > settings.max_batch_items:
        raise TooManyFiles.in_batch(settings.max_batch_items)
    fields = {
        "model": model,
        "webhook_url": webhook_url,
        "metadata": metadata,
        "audio_urls": json.dumps(urls) if urls else None,
    }
    if format_text is not None:  # keys made before the field existed still match their requests
        fields["format_text"] = str(format_text)
    parts = [u.file for u in uploads] + ([archive.file] if archive else [])
    idempotency = Idempotency.of(principal.tenant, idempotency_key, "POST /v1/batches", fields, parts)

    def create() -> Batch:
        items = [batches.upload_item(u.filename, u.file) for u in uploads]
        with ExitStack() as archive_open:  # the archive is read, one member at a time, while it is open
            if archive is not None:
                room = settings.max_batch_items - len(items) - len(urls)
                items += archive_open.enter_context(batches.archive_items(archive.file, settings, room))
            items += [batches.url_item(url) for url in urls]
            return batches.create(session, storage, settings, celery, items, options, idempotency)

    batch, replayed = made_once(
        session,
        idempotency,
        create,
        made=lambda key: batches.get(session, key.batch_id, principal.tenant) if key.batch_id else None,
    )
    return _batch_response(session, batch, replayed=replayed)


def _batch_response(session: SessionDep, batch: Batch, *, replayed: bool) -> Response:
    body = _batch_out(session, batch).model_dump_json()
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(body, status_code=202, media_type="application/json", headers=headers)


def _batch_out(session: SessionDep, batch: Batch, *, with_items: bool = True) -> BatchOut:
    items = batches.items(session, batch.id) if with_items else None
    return BatchOut.of(batch, events.batch_counts(session, batch.id), items)


@router.get("/{batch_id}", response_model=BatchOut, responses=error_responses(404))
def get_batch(principal: PrincipalDep, session: SessionDep, batch_id: str, items: bool = True) -> BatchOut:
    """The batch's status, its jobs counted by status, and every item with its job and error
    (`items=false`: counts only, for cheap polling of a large batch)."""
    batch = batches.get(session, batch_id, principal.tenant)
    return _batch_out(session, batch, with_items=items)


@router.get(
    "/{batch_id}/results",
    responses={**error_responses(404, 422), 200: {"content": {"application/x-ndjson": {}, "application/zip": {}}}},
)
def get_results(
    principal: PrincipalDep, session: SessionDep, batch_id: str, format: Literal["jsonl", "srt", "vtt"] = "jsonl"
) -> Response:
    """Results so far, in file order: JSONL with one job per line (as GET /v1/jobs/{id} answers: its
    status, error or result with words and segments), or a zip holding an SRT or WebVTT file per succeeded item."""
    batch = batches.get(session, batch_id, principal.tenant)
    jobs = batches.items(session, batch.id)
    if format == "jsonl":
        return StreamingResponse(_jsonl(jobs), media_type="application/x-ndjson")
    return _subtitles_zip(batch, jobs, format)


def _jsonl(jobs: list[Job]) -> Iterator[str]:
    for job in jobs:  # each line is the job as GET /v1/jobs/{id} answers
        yield JobOut.of(job).model_dump_json() + "\n"


def _subtitles_zip(batch: Batch, jobs: list[Job], format: Literal["srt", "vtt"]) -> Response:
    render = to_srt if format == "srt" else to_vtt
    buffer = io.BytesIO()  # subtitles are small: a thousand of them is a few MB
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for job in jobs:
            if job.status != JobStatus.succeeded or job.result is None:
                continue
            stem = PurePosixPath(job.filename or "audio").stem or "audio"
            zf.writestr(
                f"{job.batch_index or 0:04d}-{stem}.{format}", render(Transcript.from_dict(job.result).segments)
            )
    headers = {"Content-Disposition": f'attachment; filename="batch-{batch.id}-{format}.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


@router.delete("/{batch_id}", status_code=204, responses=error_responses(404))
def delete_batch(principal: PrincipalDep, session: SessionDep, storage: StorageDep, batch_id: str) -> Response:
    """Cancel the batch's unfinished jobs and delete every job's audio and transcript. No events are sent
    for what is canceled."""
    batches.remove(session, storage, batch_id, principal.tenant)
    return Response(status_code=204)
