"""The `stt` command, run as a real process against a real api and worker."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import srt
from sqlalchemy import func, select

from api.main import create_app
from stt_common.models import Job
from stt_common.webhooks import new_secret, sign
from tests.services import CeleryWorker, ThreadedServer
from tests.stack import SAMPLES, Stack

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
        # Submit only (several files: one batch), as an interrupted run would have done ...
        first = stt("transcribe", str(folder), "--url", server.url)
        assert first.returncode == 1
        assert "notes.wav: refused (invalid_audio)" in first.stderr
        header, *lines = first.stdout.splitlines()
        assert header.startswith("batch ")
        submitted = dict(line.split("\t")[::-1] for line in lines)
        assert sorted(Path(p).name for p in submitted) == ["clip01.wav", "clip02.flac", "clip04.mp3", "notes.wav"]

        # ... then run again with a worker and --wait: the same jobs come back, none is made twice.
        worker = CeleryWorker(stack.env, tmp_path / "worker.log").start()
        try:
            second = stt("transcribe", str(folder), "--url", server.url, "--wait", "--format", "srt", "--out", str(out))
        finally:
            worker.stop()
        assert second.returncode == 1, second.stderr  # the bad file still fails, loudly
        assert second.stderr.count("notes.wav: refused (invalid_audio)") == 1
        with stack.session_factory() as s:  # the batch's 3 jobs and its refused item, not one more
            assert s.scalar(select(func.count()).select_from(Job)) == 4
        written = sorted(out.glob("*.srt"))
        assert [p.name for p in written] == ["clip01.srt", "clip02.srt", "clip04.srt"]
        for path in written:
            cues = list(srt.parse(path.read_text(encoding="utf-8")))
            assert cues
            assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
        assert not list(out.glob("*.part"))

        job_id = next(v for k, v in submitted.items() if k.endswith("clip01.wav"))
        status = stt("status", job_id, "--url", server.url)
        assert status.returncode == 0
        assert status.stdout.startswith("succeeded  progress 100%")
        text = stt("result", job_id, "--url", server.url)
        assert text.returncode == 0
        assert text.stdout.strip()
        missing = stt("status", "00000000-0000-0000-0000-000000000000", "--url", server.url)
        assert missing.returncode == 2
        assert "job_not_found" in missing.stderr

        # Run again: the batch is found from --out's state file, nothing is uploaded or made again.
        third = stt("transcribe", str(folder), "--url", server.url, "--format", "srt", "--out", str(out))
        assert third.returncode == 1
        assert "notes.wav: refused" in third.stderr
        assert third.stdout.splitlines()[0] == header
        with stack.session_factory() as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 4
        # One file is one job, printed as it finishes.
        worker = CeleryWorker(stack.env, tmp_path / "worker2.log").start()
        try:
            single = stt("transcribe", str(SAMPLES / "clip05.wav"), "--url", server.url, "--wait")
        finally:
            worker.stop()
        assert single.returncode == 0, single.stderr
        assert single.stdout.strip(), single.stderr
    finally:
        server.stop()


def test_webhooks_verify(tmp_path: Path) -> None:
    secret = new_secret()
    body = '{"type":"job.succeeded","timestamp":"2026-11-25T21:00:00Z","data":{"id":"j-1"}}'
    now = int(time.time())
    signature = sign(secret, "msg_1", now, body)
    (tmp_path / "body.json").write_text(body)
    args = [
        "webhooks",
        "verify",
        str(tmp_path / "body.json"),
        "--secret",
        secret,
        "--id",
        "msg_1",
        "--timestamp",
        str(now),
    ]
    good = stt(*args, "--signature", signature)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "valid job.succeeded j-1", good.stderr
    (tmp_path / "body.json").write_text(body.replace("j-1", "j-2"))
    forged = stt(*args, "--signature", signature)
    assert forged.returncode == 1
    assert "invalid" in forged.stderr
    (tmp_path / "body.json").write_text(body)
    stale = stt(*args[:-1], str(now - 3600), "--signature", sign(secret, "msg_1", now - 3600, body))
    assert stale.returncode == 1
    assert "invalid" in stale.stderr
