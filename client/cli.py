"""`stt`: transcribe files and folders through the service from the command line.

    stt transcribe lectures/ --wait --format srt --out subtitles/
    stt status JOB_ID
    stt result JOB_ID --format vtt
    stt webhooks verify --secret whsec_... --id msg_... --timestamp 1764100000 --signature v1,... body.json

Several files go as batches (up to --batch-size files each). An interrupted `stt transcribe` can simply
be run again: every job and batch is submitted with an Idempotency-Key derived from the files' bytes
and the options, so the service hands back what it already has instead of transcribing twice; with
--out, the batches are also remembered in OUT/.stt-batches.json, and files whose output exists are
skipped.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from client.api import TERMINAL, ApiError, Batch, SttClient, batch_key, idempotency_key

T = TypeVar("T")

app = typer.Typer(help="Turkish speech-to-text: submit audio, wait, fetch transcripts.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Work with the service's signed webhooks.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
STATE_FILE = ".stt-batches.json"
err = Console(stderr=True, soft_wrap=True)  # whole lines: scripts grep them
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".mkv", ".mov"}
UrlOption = Annotated[str, typer.Option(envvar="STT_URL", help="The service's base URL.")]
KeyOption = Annotated[str | None, typer.Option(envvar="STT_API_KEY", help="Your API key (stt_...).")]


class Format(StrEnum):
    txt = "txt"
    json = "json"
    srt = "srt"
    vtt = "vtt"


def collect(paths: list[Path]) -> list[Path]:
    """Files as given; folders searched recursively for audio and video by suffix."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise typer.BadParameter(f"{path} is neither a file nor a folder")
    return list(dict.fromkeys(found))


def output_path(out: Path, source: Path, fmt: Format) -> Path:
    return out / f"{source.stem}.{fmt.value}"


@app.command()
def transcribe(
    paths: Annotated[list[Path], typer.Argument(help="Audio or video files, or folders of them.")],
    url: UrlOption = "http://localhost:8000",
    api_key: KeyOption = None,
    model: Annotated[str | None, typer.Option(help="A served model (default: the service's).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the transcripts.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Transcript format to write.")] = Format.txt,
    out: Annotated[Path | None, typer.Option(help="Folder for transcripts (one file per input).")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Receives the signed job and batch events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Most files per batch request.")] = 1000,
) -> None:
    """Submit one file as a job, or several as batches; with --wait, write each transcript when done."""
    files = collect(paths)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    elif wait and len(files) > 1 and fmt != Format.txt:
        raise typer.BadParameter("several files in srt, vtt or json need --out DIR", param_hint="--out")
    if not [f for f in files if out is None or not output_path(out, f, fmt).exists()]:
        err.print("nothing to do")
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with SttClient(url, api_key=api_key) as stt, Progress(*columns, console=err) as progress:
        if len(files) == 1:
            failures = _one_job(stt, progress, files[0], model, webhook_url, wait, fmt, out)
        else:
            failures = sum(
                _one_batch(stt, progress, files[i : i + batch_size], model, webhook_url, wait, fmt, out)
                for i in range(0, len(files), batch_size)
            )
    raise typer.Exit(1 if failures else 0)


def _one_job(
    stt: SttClient,
    progress: Progress,
    path: Path,
    model: str | None,
    webhook_url: str | None,
    wait: bool,
    fmt: Format,
    out: Path | None,
) -> int:
    try:
        job = stt.submit(path, model=model, webhook_url=webhook_url, key=idempotency_key(path, model, webhook_url))
    except ApiError as exc:
        progress.console.print(f"[red]{escape(str(path))}: refused ({exc.code}): {escape(exc.message)}")
        return 1
    if not wait:
        typer.echo(f"{job['id']}\t{path}")
        return 0
    task = progress.add_task(escape(path.name), total=100)
    job = stt.wait(job["id"], on_update=lambda j: progress.update(task, completed=round(j["progress"] * 100)))
    if job["status"] != "succeeded":
        _report(progress, path, job["status"], job.get("error"))
        return 1
    _write(out, path, fmt, stt.transcript(job["id"], fmt.value))
    return 0


def _one_batch(
    stt: SttClient,
    progress: Progress,
    files: list[Path],
    model: str | None,
    webhook_url: str | None,
    wait: bool,
    fmt: Format,
    out: Path | None,
) -> int:
    """Submit (or find again) one batch; with --wait, write its transcripts. Returns the failures."""
    if out is not None and all(output_path(out, f, fmt).exists() for f in files):
        return 0
    key = batch_key(files, model, webhook_url)
    batch = _known_batch(stt, out, key)
    if batch is None:
        submitting = progress.add_task(f"uploading {len(files)} files", total=None)
        try:
            batch = stt.submit_batch(files, model=model, webhook_url=webhook_url, key=key)
        except ApiError as exc:
            progress.console.print(f"[red]batch of {len(files)} files refused ({exc.code}): {escape(exc.message)}")
            return len(files)
        finally:
            progress.remove_task(submitting)
        _remember_batch(out, key, batch["id"])
    refused = {
        item["index"]: item["error"] for item in batch["items"] if item["status"] == "failed" and item.get("error")
    }
    for index, error in refused.items():
        _report(progress, files[index], "refused", error)
    if not wait:
        typer.echo(f"batch {batch['id']}")
        for item in batch["items"]:
            typer.echo(f"{item['job_id']}\t{files[item['index']]}")
        return len(refused)
    task = progress.add_task(f"batch {batch['id'][:8]}", total=batch["total"])

    def show(b: Batch) -> None:
        progress.update(task, completed=b["total"] - b["counts"]["queued"] - b["counts"]["processing"])

    stt.wait_batch(batch["id"], on_update=show)
    return _write_batch(stt, progress, batch["id"], files, fmt, out, refused)


def _write_batch(
    stt: SttClient,
    progress: Progress,
    batch_id: str,
    files: list[Path],
    fmt: Format,
    out: Path | None,
    refused: dict[int, Any],
) -> int:
    """Write each succeeded item's transcript; report failures not already reported as refused."""
    failures = 0
    for line in stt.batch_results(batch_id):
        path = files[line["batch_index"]]
        if line["status"] != "succeeded":
            failures += 1
            if line["batch_index"] not in refused:
                _report(progress, path, line["status"], line.get("error"))
            continue
        if fmt == Format.txt:
            _write(out, path, fmt, line["result"]["text"] + "\n", label=out is None)
        elif fmt == Format.json:
            _write(out, path, fmt, json.dumps(line["result"], ensure_ascii=False, indent=2) + "\n")
    if fmt in (Format.srt, Format.vtt):
        with zipfile.ZipFile(io.BytesIO(stt.batch_subtitles(batch_id, fmt.value))) as zf:
            for name in zf.namelist():
                _write(out, files[int(name.split("-", 1)[0])], fmt, zf.read(name).decode("utf-8"))
    return failures


def _report(progress: Progress, path: Path, status: str, error: dict[str, Any] | None) -> None:
    error = error or {}
    progress.console.print(
        f"[red]{escape(str(path))}: {status} ({error.get('code')}): {escape(str(error.get('message')))}"
    )


def _write(out: Path | None, path: Path, fmt: Format, text: str, label: bool = False) -> None:
    if out is None:
        typer.echo(f"{path}\t{text.rstrip()}" if label else text.rstrip("\n"))
        return
    target = output_path(out, path, fmt)
    if target.exists():
        return
    partial = target.with_name(target.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)  # a half-written transcript never looks done


def _known_batch(stt: SttClient, out: Path | None, key: str) -> Batch | None:
    """The batch an earlier run submitted with this key, found without uploading again."""
    if out is None or not (out / STATE_FILE).exists():
        return None
    batch_id = json.loads((out / STATE_FILE).read_text()).get(key)
    if batch_id is None:
        return None
    try:
        return stt.batch(batch_id)
    except ApiError:
        return None  # deleted since: submit again


def _remember_batch(out: Path | None, key: str, batch_id: str) -> None:
    if out is None:
        return
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state[key] = batch_id
    partial = state_path.with_name(STATE_FILE + ".part")
    partial.write_text(json.dumps(state, indent=1))
    partial.replace(state_path)


@app.command()
def status(job_id: str, url: UrlOption = "http://localhost:8000", api_key: KeyOption = None) -> None:
    """A job's status, progress and ETA."""
    with SttClient(url, api_key=api_key) as stt:
        job = _or_exit(lambda: stt.job(job_id))
    line = f"{job['status']}  progress {job['progress']:.0%}"
    if job.get("eta_seconds") is not None:
        line += f"  eta {job['eta_seconds']:.0f} s"
    if job.get("error"):
        line += f"  {job['error']['code']}: {job['error']['message']}"
    typer.echo(line)
    raise typer.Exit(0 if job["status"] not in TERMINAL or job["status"] == "succeeded" else 1)


@app.command()
def result(
    job_id: str,
    url: UrlOption = "http://localhost:8000",
    api_key: KeyOption = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.txt,
) -> None:
    """Print a succeeded job's transcript."""
    with SttClient(url, api_key=api_key) as stt:
        typer.echo(_or_exit(lambda: stt.transcript(job_id, fmt.value)).rstrip("\n"))


@webhooks_app.command("verify")
def verify_webhook(
    body: Annotated[Path, typer.Argument(help="The request body as received (a file, or - for stdin).")],
    secret: Annotated[str, typer.Option(envvar="STT_WEBHOOK_SECRET", help="The whsec_... signing secret.")],
    msg_id: Annotated[str, typer.Option("--id", help="The webhook-id header.")],
    timestamp: Annotated[str, typer.Option(help="The webhook-timestamp header.")],
    signature: Annotated[str, typer.Option(help="The webhook-signature header.")],
) -> None:
    """Check a received webhook's signature (and that its timestamp is within 5 minutes); print its event."""
    data = sys.stdin.buffer.read() if str(body) == "-" else body.read_bytes()
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    try:
        event = Webhook(secret).verify(data, headers)
    except (WebhookVerificationError, ValueError) as exc:
        err.print(f"[red]invalid: {escape(str(exc))}")
        raise typer.Exit(1) from exc
    subject = (event.get("data") or {}).get("id")
    typer.echo(f"valid {event.get('type')} {subject}")


def _or_exit(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiError as exc:
        err.print(f"[red]{exc.code}: {escape(exc.message)}")
        raise typer.Exit(2) from exc


def main() -> None:
    app()
