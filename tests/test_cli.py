"""The `stt` command, run as a real process against a real api and worker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt
from sqlalchemy import func, select

from api.main import create_app
from stt_common.models import Job
from tests.conftest import SAMPLES, Stack
from tests.services import CeleryWorker, ThreadedServer

pytestmark = pytest.mark.slow


def stt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "client", *args], capture_output=True, text=True, timeout=180)


def test_transcribe_a_folder_to_subtitles_and_resume(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "lectures"
    (folder / "week2").mkdir(parents=True)
    for name in ("clip01.wav", "clip02.flac"):
        shutil.copy(SAMPLES / name, folder / name)
    shutil.copy(SAMPLES / "clip04.mp3", folder / "week2" / "clip04.mp3")
    (folder / "notes.wav").write_text("not audio at all\n" * 20)  # a bad file among good ones
    (folder / "readme.txt").write_text("skipped: not an audio suffix")
    out = tmp_path / "subtitles"
    server = ThreadedServer(create_app(stack.settings))
    try:
        # Submit only, as an interrupted run would have done ...
        first = stt("transcribe", str(folder), "--url", server.url)
        assert first.returncode == 1 and "notes.wav: refused (invalid_audio)" in first.stderr
        submitted = dict(line.split("\t")[::-1] for line in first.stdout.splitlines())
        assert sorted(Path(p).name for p in submitted) == ["clip01.wav", "clip02.flac", "clip04.mp3"]

        # ... then run again with a worker and --wait: the same jobs come back, none is made twice.
        worker = CeleryWorker(stack.env, tmp_path / "worker.log").start()
        try:
            second = stt("transcribe", str(folder), "--url", server.url, "--wait", "--format", "srt",
                         "--out", str(out))
        finally:
            worker.stop()
        assert second.returncode == 1, second.stderr  # the bad file still fails, loudly
        with stack.session_factory() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 3
        written = sorted(out.glob("*.srt"))
        assert [p.name for p in written] == ["clip01.srt", "clip02.srt", "clip04.srt"]
        for path in written:
            cues = list(srt.parse(path.read_text(encoding="utf-8")))
            assert cues and all(a.end <= b.start for a, b in zip(cues, cues[1:], strict=False))
        assert not list(out.glob("*.part"))

        job_id = next(iter(submitted.values()))
        status = stt("status", job_id, "--url", server.url)
        assert status.returncode == 0 and status.stdout.startswith("succeeded  progress 100%")
        text = stt("result", job_id, "--url", server.url)
        assert text.returncode == 0 and text.stdout.strip()
        missing = stt("status", "00000000-0000-0000-0000-000000000000", "--url", server.url)
        assert missing.returncode == 2 and "job_not_found" in missing.stderr

        # Everything done is skipped; only the bad file is tried again.
        third = stt("transcribe", str(folder), "--url", server.url, "--format", "srt", "--out", str(out))
        assert third.returncode == 1 and third.stdout == "" and "notes.wav" in third.stderr
    finally:
        server.stop()
