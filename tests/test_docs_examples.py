"""The documented examples, run as written against a real stack (api, a Celery worker, Redis, a
database): every `curl` line of README.md's API tour, every Python block of docs/API.md and the client's
usage docstring, and the example job of docs/API.md against a real job of the same sample. A renamed
route, field or code fails here before it misleads a user."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import client.api
from api.main import create_app
from client.api import SttClient
from stt_common import audio
from stt_common.migrate import upgrade
from stt_common.settings import REPO_ROOT
from tests.audio_files import FORMATS, encode
from tests.services import CeleryWorker, RedisServer, ThreadedServer, wait_for
from tests.stack import SAMPLES, make_stack
from tests.test_auth import new_key

pytestmark = pytest.mark.slow
README = (REPO_ROOT / "README.md").read_text()
API_DOC = (REPO_ROOT / "docs" / "API.md").read_text()


def blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, re.DOTALL)


def commands(block: str) -> list[str]:
    """A block's `curl` lines, without their trailing comments."""
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.startswith("curl ")]


@dataclass
class Servers:
    open: str  # the api with keys off, as `make up` runs it
    keyed: str  # the same service with keys on
    key: str
    workdir: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """One database, Redis and worker behind two apis: keys off and keys on. The working directory
    holds the files the examples name."""
    root = tmp_path_factory.mktemp("docs")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    url = f"sqlite:///{root / 'stt.db'}"
    upgrade(url)
    stack = make_stack(url, redis.url, root)
    keyed = make_stack(url, redis.url, root, auth_enabled=True)
    workdir = root / "work"
    _example_files(workdir)
    worker = CeleryWorker(stack.env, root / "worker.log").start()
    open_api, keyed_api = ThreadedServer(create_app(stack.settings)), ThreadedServer(create_app(keyed.settings))
    try:
        wait_for(lambda: httpx.get(f"{open_api.url}/ready").status_code == 200, 60, "a warm worker")
        key = new_key(keyed, "docs")["Authorization"].split()[1]
        yield Servers(open_api.url, keyed_api.url, key, workdir)
    finally:
        open_api.stop()
        keyed_api.stop()
        worker.stop()
        redis.stop()


def _example_files(workdir: Path) -> None:
    """samples/ as in the repository, and the files the README's tour names."""
    workdir.mkdir()
    shutil.copytree(SAMPLES, workdir / "samples")
    speech = audio.decode(SAMPLES / "clip02.flac", 16000, 60)
    mp4 = next(f for f in FORMATS if f.name == "mp4-video-aac")
    (workdir / "lecture.mp4").write_bytes(encode(speech, 16000, mp4))
    shutil.copy(SAMPLES / "clip01.wav", workdir / "a.wav")
    shutil.copy(SAMPLES / "clip04.mp3", workdir / "b.mp3")
    shutil.copy(SAMPLES / "clip03.ogg", workdir / "lecture.mp3")  # the client docstring's file: any audio will do
    with zipfile.ZipFile(workdir / "lectures.zip", "w") as zf:
        zf.write(SAMPLES / "clip05.wav", "week1/clip05.wav")


def finished_job(base: str, path: Path, api_key: str | None = None) -> str:
    with SttClient(base, api_key=api_key) as stt:
        job = stt.wait(stt.submit(path)["id"], timeout=60)
    assert job["status"] == "succeeded", job
    return str(job["id"])


def test_every_curl_line_of_the_readme_tour_answers_without_an_error(servers: Servers) -> None:
    (tour,) = [b for b in blocks(README, "bash") if "make up" in b and "/v1/batches" in b]
    lines = commands(tour)
    assert len(lines) >= 10
    job_id = finished_job(servers.open, SAMPLES / "clip01.wav")
    with httpx.Client(base_url=servers.open, timeout=60) as api:
        clip = (SAMPLES / "clip01.wav").read_bytes()
        batch_id = api.post("/v1/batches", files={"files": ("a.wav", clip)}).json()["id"]
    env = {**os.environ, "ID": job_id, "BATCH": batch_id}
    for line in lines:
        runnable = line.replace("localhost:8000", servers.open.removeprefix("http://"))
        out = subprocess.run(
            [
                "bash",
                "-c",
                f"{runnable} --silent --show-error --fail-with-body --output /dev/null --write-out '%{{http_code}}'",
            ],
            cwd=servers.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, (line, out.stdout, out.stderr)
        assert out.stdout in {"200", "202", "204", "206"}, (line, out.stdout)


def test_the_documented_archive_variant_and_the_local_webhook_walkthrough(servers: Servers) -> None:
    with httpx.Client(base_url=servers.open, timeout=60) as api:
        archive = (servers.workdir / "lectures.zip").read_bytes()
        r = api.post("/v1/batches", files={"archive": ("lectures.zip", archive)})
        assert r.status_code == 202
        assert r.json()["items"][0]["filename"] == "week1/clip05.wav"
        r = api.post(
            "/v1/jobs",
            files={"file": ("a.wav", (SAMPLES / "clip01.wav").read_bytes())},
            data={"webhook_url": "http://127.0.0.1:9000/hook"},
        )  # without STT_WEBHOOK_ALLOWED_HOSTS
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_webhook_url")
        assert "STT_WEBHOOK_ALLOWED_HOSTS" in r.json()["error"]["message"]
    (walkthrough,) = [b for b in blocks(README, "bash") if "STT_WEBHOOK_ALLOWED_HOSTS=127.0.0.1 make up" in b]
    assert any("webhook_url=http://127.0.0.1:9000/hook" in line for line in commands(walkthrough))


@pytest.mark.parametrize("source", ["docs/API.md", "client/api.py"])
def test_every_python_example_runs_as_written_with_keys_on(servers: Servers, source: str) -> None:
    if source == "client/api.py":
        docstring = ast.get_docstring(ast.parse((REPO_ROOT / source).read_text())) or ""
        examples = [textwrap.dedent(docstring.split("\n\n", 1)[1])]  # the usage after the summary line
    else:
        examples = blocks(API_DOC, "python")
    assert examples, source
    for code in examples:
        code = code.replace("http://localhost:8000", servers.keyed).replace(
            "api_key=None", "api_key=os.environ['STT_API_KEY']"
        )
        out = subprocess.run(
            [sys.executable, "-c", "import os\n" + code],
            cwd=servers.workdir,
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "STT_API_KEY": servers.key, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert out.returncode == 0, (code, out.stderr[-3000:])
        assert out.stdout.strip(), code


def test_the_example_job_is_what_the_same_sample_returns(servers: Servers) -> None:
    example = next(json.loads(b) for b in blocks(API_DOC, "json") if '"object": "job"' in b)
    job_id = finished_job(servers.open, SAMPLES / "clip01.wav")
    real = httpx.get(f"{servers.open}/v1/jobs/{job_id}").json()
    assert _shape(example) == _shape(real)
    assert {k: example["audio"][k] for k in ("filename", "format", "bytes", "duration_s")} == {
        k: real["audio"][k] for k in ("filename", "format", "bytes", "duration_s")
    }
    assert real["audio"]["sha256"].startswith(example["audio"]["sha256"].rstrip("…"))
    for name, value in example["timings"].items():
        assert value == round(value, 4)
        assert real["timings"][name] == round(real["timings"][name], 4)


def _shape(value: object) -> object:
    """Keys all the way down (a list by its first element); leaves by whether they are null."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return value is None


def test_the_client_usage_names_only_what_the_module_defines() -> None:
    docstring = ast.get_docstring(ast.parse((REPO_ROOT / "client" / "api.py").read_text())) or ""
    (imported,) = re.findall(r"from client\.api import (.+)", docstring)
    assert all(hasattr(client.api, name.strip()) for name in imported.split(","))


def test_every_stt_command_of_the_readme_runs_with_keys_on(servers: Servers) -> None:
    (block,) = [b for b in blocks(README, "bash") if "stt transcribe" in b]
    lines = [
        re.sub(r"\s+#.*$", "", line).strip()
        for line in block.splitlines()
        if line.startswith("stt ") and "…" not in line
    ]
    assert len(lines) >= 3
    lectures = servers.workdir / "lectures"
    lectures.mkdir(exist_ok=True)
    for name in ("clip01.wav", "clip02.flac"):
        shutil.copy(SAMPLES / name, lectures / name)
    job_id = finished_job(servers.keyed, SAMPLES / "clip01.wav", api_key=servers.key)
    env = {
        **os.environ,
        "ID": job_id,
        "STT_URL": servers.keyed,
        "STT_API_KEY": servers.key,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for line in lines:
        out = subprocess.run(
            ["bash", "-c", line], cwd=servers.workdir, env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, (line, out.stdout[-2000:], out.stderr[-2000:])
    assert sorted(p.name for p in (servers.workdir / "subtitles").glob("*.srt")) == ["clip01.srt", "clip02.srt"]
