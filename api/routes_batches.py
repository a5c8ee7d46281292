"""/v1/batches: many files in one request, followed as one object, with results as JSONL or a zip of
subtitles."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, UploadFile
from fastapi.responses import Response, StreamingResponse

from api import batches
from api.auth import PrincipalDep, authenticate
from api.deps import CeleryDep, SessionDep, SettingsDep, StorageDep
from api.idempotency import REPLAY_HEADER, Idempotency, made_once
from api.schemas import error_responses
from api.submission import job_options
from stt_common import events
from stt_common.errors import TooManyFiles
from stt_common.models import Batch, Job, JobStatus
from stt_common.resources import BatchOut, JobOut
from stt_common.subtitles import to_srt, to_vtt
from stt_common.transcript import Transcript

router = APIRouter(prefix="/v1/batches", tags=["batches"], dependencies=[Depends(authenticate)])


@router.post("", status_code=202, response_model=BatchOut, responses=error_responses(400, 408, 409, 413, 422))
def create_batch(
    principal: PrincipalDep,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    celery: CeleryDep,
    files: Annotated[
        list[UploadFile] | None, File(description="The audio files, one part each (repeat the field).")
    ] = None,
    archive: Annotated[
        UploadFile | None, File(description="A zip archive of audio files; its members follow any `files` parts.")
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
    idempotency_key: Annotated[
        str | None,
        Header(min_length=1, max_length=255, description="Retry-safe: the same key and request return the same batch."),
    ] = None,
) -> Response:
    """Accept many audio files at once. Each is checked on its own: bad ones are listed with their error
    code and the rest are queued. Returns at once with the batch and its items."""
    options = job_options(settings, principal.tenant, model, webhook_url, metadata)
    uploads = list(files or [])
    if len(uploads) > settings.max_batch_items:
        raise TooManyFiles.in_batch(settings.max_batch_items)
    fields = {"model": model, "webhook_url": webhook_url, "metadata": metadata}
    parts = [u.file for u in uploads] + ([archive.file] if archive else [])
    idempotency = Idempotency.of(principal.tenant, idempotency_key, "POST /v1/batches", fields, parts)

    def create() -> Batch:
        items = [batches.upload_item(u.filename, u.file) for u in uploads]
        with ExitStack() as archive_open:  # the archive is read, one member at a time, while it is open
            if archive is not None:
                room = settings.max_batch_items - len(items)
                items += archive_open.enter_context(batches.archive_items(archive.file, settings, room))
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
