"""`stt`: transcribe files and folders through the service from the command line.

    stt transcribe lectures/ --wait --format srt --out subtitles/
    stt status JOB_ID
    stt result JOB_ID --format vtt

An interrupted `stt transcribe` can simply be run again: each file is submitted with an Idempotency-Key
derived from its bytes and the model, so the service hands back the job it already has, and files
whose output already exists in --out are skipped.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from client.api import TERMINAL, ApiError, SttClient, idempotency_key

app = typer.Typer(help="Turkish speech-to-text: submit audio, wait, fetch transcripts.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)  # whole lines: scripts grep them
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".mkv", ".mov"}
UrlOption = Annotated[str, typer.Option(envvar="STT_URL", help="The service's base URL.")]


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
    model: Annotated[str | None, typer.Option(help="A served model (default: the service's).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the transcripts.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Transcript format to write.")] = Format.txt,
    out: Annotated[Path | None, typer.Option(help="Folder for transcripts (one file per input).")] = None,
) -> None:
    """Submit files as jobs; with --wait, fetch each transcript as it finishes."""
    files = collect(paths)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        files = [f for f in files if not output_path(out, f, fmt).exists()]  # done in an earlier run
    if not files:
        err.print("nothing to do")
        return
    failures = 0
    jobs: dict[str, Path] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with SttClient(url) as stt, Progress(*columns, console=err) as progress:
        submitting = progress.add_task("submitting", total=len(files))
        for path in files:
            try:
                job = stt.submit(path, model=model, key=idempotency_key(path, model))
                jobs[job["id"]] = path
            except ApiError as exc:
                failures += 1
                progress.console.print(f"[red]{escape(str(path))}: refused ({exc.code}): {escape(exc.message)}")
            progress.advance(submitting)
        if not wait:
            for job_id, path in jobs.items():
                typer.echo(f"{job_id}\t{path}")
            raise typer.Exit(1 if failures else 0)
        transcribing = progress.add_task("transcribing", total=len(jobs))
        for job_id, path in jobs.items():
            job = stt.wait(job_id)
            progress.advance(transcribing)
            if job["status"] != "succeeded":
                failures += 1
                error = job.get("error") or {}
                progress.console.print(f"[red]{escape(str(path))}: {job['status']} ({error.get('code')}): "
                                       f"{escape(str(error.get('message')))}")
                continue
            text = stt.transcript(job_id, fmt.value)
            if out is not None:
                target = output_path(out, path, fmt)
                partial = target.with_name(target.name + ".part")
                partial.write_text(text, encoding="utf-8")
                partial.replace(target)  # a half-written transcript never looks done
            else:
                typer.echo(text.rstrip("\n"))
    raise typer.Exit(1 if failures else 0)


@app.command()
def status(job_id: str, url: UrlOption = "http://localhost:8000") -> None:
    """A job's status, progress and ETA."""
    with SttClient(url) as stt:
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
    fmt: Annotated[Format, typer.Option("--format")] = Format.txt,
) -> None:
    """Print a succeeded job's transcript."""
    with SttClient(url) as stt:
        typer.echo(_or_exit(lambda: stt.transcript(job_id, fmt.value)).rstrip("\n"))


def _or_exit(call):  # type: ignore[no-untyped-def]
    try:
        return call()
    except ApiError as exc:
        err.print(f"[red]{exc.code}: {escape(exc.message)}")
        raise typer.Exit(2) from exc


def main() -> None:
    app()
