"""The job state machine and `run_job`, on SQLite and PostgreSQL, with the real engine and no broker."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import update

from stt_common import jobs
from stt_common.db import session_scope
from stt_common.errors import TransientError
from stt_common.models import Job
from stt_common.storage import audio_key
from tests.stack import SAMPLES, TINY_MODEL, Stack
from worker.recognizer import Recognizer
from worker.runner import Outcome, WorkerContext, fail_exhausted, run_job


@pytest.fixture(scope="module")
def recognizers() -> dict[str, Recognizer]:
    return {"tr-tiny-random": Recognizer.load(TINY_MODEL)}


@pytest.fixture
def ctx(stack: Stack, recognizers: dict[str, Recognizer]) -> WorkerContext:
    return WorkerContext(stack.settings, stack.session_factory, stack.storage, recognizers)


def add_job(stack: Stack, path: Path, model: str = "tr-tiny-random") -> uuid.UUID:
    job_id = uuid.uuid4()
    with path.open("rb") as fh:
        stored = stack.storage.put(audio_key(job_id), fh)
    with session_scope(stack.session_factory) as s:
        s.add(Job(id=job_id, model=model, audio_key=stored.key, audio_sha256=stored.sha256, audio_bytes=stored.bytes))
    return job_id


def load(stack: Stack, job_id: uuid.UUID) -> Job:
    with stack.session_factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_run_job_stores_the_result_and_a_second_delivery_is_a_no_op(ctx: WorkerContext, stack: Stack) -> None:
    job_id = add_job(stack, SAMPLES / "clip02.flac")
    assert run_job(ctx, job_id) is Outcome.succeeded
    first = load(stack, job_id)
    assert first.status == "succeeded"
    assert first.attempts == 1
    assert first.text is not None
    assert first.result is not None
    assert first.result["words"]
    assert first.processing_s
    assert first.real_time_factor
    assert first.finished_at
    assert first.started_at
    assert first.created_at <= first.started_at <= first.finished_at
    assert run_job(ctx, job_id) is Outcome.skipped
    again = load(stack, job_id)
    assert (again.attempts, again.finished_at, again.text) == (first.attempts, first.finished_at, first.text)


def test_bad_audio_fails_with_a_code_and_is_not_retried(ctx: WorkerContext, stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    job_id = add_job(stack, path)
    assert run_job(ctx, job_id) is Outcome.failed
    job = load(stack, job_id)
    assert job.status == "failed"
    assert job.error_code == "invalid_audio"
    assert job.attempts == 1


def test_missing_audio_and_unloaded_model_fail_with_codes(ctx: WorkerContext, stack: Stack) -> None:
    gone = add_job(stack, SAMPLES / "clip01.wav")
    stack.storage.delete(audio_key(gone))
    assert run_job(ctx, gone) is Outcome.failed
    assert load(stack, gone).error_code == "audio_missing"
    other = add_job(stack, SAMPLES / "clip01.wav", model="not-loaded")
    assert run_job(ctx, other) is Outcome.failed
    assert load(stack, other).error_code == "model_unavailable"


def test_a_canceled_job_is_never_run(ctx: WorkerContext, stack: Stack) -> None:
    job_id = add_job(stack, SAMPLES / "clip01.wav")
    with session_scope(stack.session_factory) as s:
        jobs.delete(s, job_id)
    assert run_job(ctx, job_id) is Outcome.skipped
    assert load(stack, job_id).attempts == 0


def test_claim_is_compare_and_set_and_a_lapsed_lease_can_be_reclaimed(stack: Stack) -> None:
    job_id = add_job(stack, SAMPLES / "clip01.wav")
    with session_scope(stack.session_factory) as s:
        assert jobs.claim(s, job_id, lease_seconds=60, max_attempts=3) == 1
    with session_scope(stack.session_factory) as s:
        assert jobs.claim(s, job_id, lease_seconds=60, max_attempts=3) is None  # a duplicate delivery loses
    with session_scope(stack.session_factory) as s:  # the first worker died; its lease runs out
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    with session_scope(stack.session_factory) as s:
        assert jobs.claim(s, job_id, lease_seconds=60, max_attempts=3) == 2
    from stt_common.transcript import Transcript

    with session_scope(stack.session_factory) as s:  # the dead worker's late result is refused
        assert not jobs.complete(s, job_id, 1, Transcript(text="stale"), 1.0)
    with session_scope(stack.session_factory) as s:
        assert jobs.complete(s, job_id, 2, Transcript(text="fresh", duration_s=2.0), 1.0)
    job = load(stack, job_id)
    assert (job.status, job.text, job.real_time_factor) == ("succeeded", "fresh", 0.5)


def test_a_transient_failure_releases_the_job_for_a_retry(
    ctx: WorkerContext, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    job_id = add_job(stack, SAMPLES / "clip01.wav")
    recognizer = ctx.recognizers["tr-tiny-random"]

    def flaky(*_: object, **__: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(recognizer, "transcribe_file", flaky)
    with pytest.raises(TransientError):
        run_job(ctx, job_id)
    assert load(stack, job_id).status == "queued"
    monkeypatch.undo()
    assert run_job(ctx, job_id) is Outcome.succeeded
    assert load(stack, job_id).attempts == 2


def test_the_last_failed_retry_ends_the_job_with_a_code(ctx: WorkerContext, stack: Stack) -> None:
    job_id = add_job(stack, SAMPLES / "clip01.wav")
    fail_exhausted(ctx, job_id, "gave up after 6 attempts: OperationalError")
    job = load(stack, job_id)
    assert (job.status, job.error_code) == ("failed", "retries_exhausted")
    assert run_job(ctx, job_id) is Outcome.skipped  # a late message changes nothing


def test_stereo_44k_audio_transcribes_like_the_mono_original(ctx: WorkerContext, stack: Stack, tmp_path: Path) -> None:
    data, rate = sf.read(SAMPLES / "clip01.wav", dtype="float32")
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([data, data], 1), rate)
    ids = [add_job(stack, SAMPLES / "clip01.wav"), add_job(stack, path)]
    for job_id in ids:
        assert run_job(ctx, job_id) is Outcome.succeeded
    assert load(stack, ids[0]).text == load(stack, ids[1]).text


def long_recording(tmp_path: Path, minutes: float) -> Path:
    """The sample clips over and over, with pauses, as one FLAC file."""
    from stt_common import audio

    clips = [audio.decode(p, 16000, 60) for p in sorted(SAMPLES.glob("clip*"))]
    pause = np.zeros(8000, np.float32)
    pieces: list[np.ndarray] = []
    while sum(map(len, pieces)) < minutes * 60 * 16000:
        pieces += [clips[len(pieces) // 2 % len(clips)], pause]
    path = tmp_path / "long.flac"
    sf.write(path, np.concatenate(pieces), 16000)
    return path


def add_job_with_duration(stack: Stack, path: Path) -> uuid.UUID:
    job_id = add_job(stack, path)
    with session_scope(stack.session_factory) as s:
        s.execute(update(Job).where(Job.id == job_id).values(duration_s=sf.info(path).duration))
    return job_id


def test_progress_rises_as_chunks_finish_and_renews_the_lease(
    ctx: WorkerContext, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "progress_interval_seconds", 0.0)
    job_id = add_job_with_duration(stack, long_recording(tmp_path, 3))
    seen: list[tuple[float, dt.datetime]] = []
    real = jobs.report_progress

    def spy(session, job_id, attempt, progress, lease_seconds):
        owned = real(session, job_id, attempt, progress, lease_seconds)
        session.flush()
        job = session.get(Job, job_id)
        session.refresh(job)
        seen.append((job.progress, job.lease_expires_at))
        return owned

    monkeypatch.setattr(jobs, "report_progress", spy)
    assert run_job(ctx, job_id) is Outcome.succeeded
    progress = [p for p, _ in seen]
    assert len(progress) >= 20
    assert progress == sorted(progress)
    assert 0 < progress[0] < 0.1
    assert progress[-1] > 0.9
    leases = [lease for _, lease in seen]
    assert leases == sorted(leases)
    assert leases[-1] > leases[0]
    done = load(stack, job_id)
    assert done.progress == 1.0
    assert done.duration_s == pytest.approx(3 * 60, abs=10)


def test_deleting_a_running_job_stops_the_worker_at_its_next_progress_update(
    ctx: WorkerContext, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "progress_interval_seconds", 0.0)
    job_id = add_job_with_duration(stack, long_recording(tmp_path, 3))
    calls: list[float] = []
    real = jobs.report_progress

    def delete_then_report(session, job_id, attempt, progress, lease_seconds):
        calls.append(progress)
        if len(calls) == 3:  # a client's DELETE arrives mid-job
            with session_scope(stack.session_factory) as other:
                jobs.delete(other, job_id)
        return real(session, job_id, attempt, progress, lease_seconds)

    monkeypatch.setattr(jobs, "report_progress", delete_then_report)
    assert run_job(ctx, job_id) is Outcome.discarded
    assert len(calls) == 3  # stopped right there, not at the end of the audio
    job = load(stack, job_id)
    assert job.status == "canceled"
    assert job.text is None
    assert job.result is None
