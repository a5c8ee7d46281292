"""The official `openai` package, pointed at this service, transcribes through the real queue and worker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import srt
import webvtt

from api.main import create_app
from tests.services import CeleryWorker, ThreadedServer, wait_for
from tests.stack import SAMPLES, Stack

pytestmark = pytest.mark.slow
CLIP = SAMPLES / "clip02.flac"


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[openai.OpenAI]:
    server = ThreadedServer(create_app(stack.settings))
    worker = CeleryWorker(stack.env, tmp_path / "worker.log").start()
    try:
        import httpx

        wait_for(lambda: httpx.get(f"{server.url}/ready").status_code == 200, 30, "the worker's models to be warm")
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=60)
    finally:
        worker.stop()
        server.stop()


def test_every_response_format_through_the_openai_client(client: openai.OpenAI, stack: Stack) -> None:
    create = client.audio.transcriptions.create
    with CLIP.open("rb") as fh:
        plain = create(model="whisper-1", file=fh, language="tr")
    assert plain.text
    assert len(plain.text.split()) >= 5

    with CLIP.open("rb") as fh:
        text = create(model="tr-espeak-small", file=fh, response_format="text")
    assert str(text).strip() == plain.text

    with CLIP.open("rb") as fh:
        subtitles = create(model="whisper-1", file=fh, response_format="srt")
    cues = list(srt.parse(str(subtitles)))
    assert cues
    assert " ".join(c.content for c in cues) == plain.text

    with CLIP.open("rb") as fh:
        vtt = create(model="whisper-1", file=fh, response_format="vtt")
    captions = webvtt.from_buffer(io.StringIO(str(vtt))).captions
    assert [c.text for c in captions] == [c.content for c in cues]

    with CLIP.open("rb") as fh:
        verbose = create(
            model="whisper-1", file=fh, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    assert verbose.text == plain.text
    assert verbose.language == "turkish"
    assert verbose.duration == pytest.approx(5.88, abs=0.05)
    assert verbose.words
    assert " ".join(w.word for w in verbose.words) == plain.text
    assert all(0 <= w.start < w.end <= verbose.duration + 0.05 for w in verbose.words)
    assert verbose.segments
    assert " ".join(s.text for s in verbose.segments) == plain.text
    assert all(s.avg_logprob <= 0 for s in verbose.segments)

    with stack.session_factory() as s:  # every request was a real job through the queue
        from sqlalchemy import func, select

        from stt_common.models import Job

        assert s.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded")) == 5


def body_code(error: openai.APIStatusError) -> object:
    """Our error code, which the openai client keeps in the exception's `body` (the `error` object)."""
    assert isinstance(error.body, dict)
    return error.body["code"]


def test_errors_reach_the_openai_client_with_our_codes(client: openai.OpenAI) -> None:
    with CLIP.open("rb") as fh, pytest.raises(openai.BadRequestError) as wrong_language:
        client.audio.transcriptions.create(model="whisper-1", file=fh, language="en")
    assert body_code(wrong_language.value) == "unsupported_language"
    with pytest.raises(openai.APIStatusError) as not_audio:
        client.audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"just text, not audio" * 10))
    assert not_audio.value.status_code == 415
    assert body_code(not_audio.value) == "invalid_audio"
    with CLIP.open("rb") as fh, pytest.raises(openai.BadRequestError) as unknown:
        client.audio.transcriptions.create(model="no-such-model", file=fh)
    assert body_code(unknown.value) == "unknown_model"


@pytest.mark.usefixtures("stack")
def test_the_openai_client_lists_the_served_models_by_id(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == ["tr-espeak-small"]
    (model,) = models
    assert model.object == "model"
    assert model.owned_by == "turkish-stt"
    assert model.created > 1_600_000_000
    extra = model.model_dump()
    assert extra["default"] is True
    assert extra["language"] == "tr"
    assert extra["name"] == model.id
    assert client.models.retrieve("tr-espeak-small").id == "tr-espeak-small"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("whisper-9")
    assert raised.value.status_code == 404
    assert body_code(raised.value) == "model_not_found"
