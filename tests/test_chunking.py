"""Cutting a stream into chunks: the kept frames tile the audio exactly, windows keep their context,
pauses become cuts, and memory holds one window whatever the length."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from worker.chunking import Chunk, ChunkPlan, chunks

RATE, FRAME = 16000, 320


def frames_of(n_samples: int) -> int:
    """Output frames of a wav2vec2 encoder (receptive field 400, stride 320) for n samples."""
    return max(1, (n_samples - 400) // FRAME + 1)


def kept(chunk: Chunk) -> range:
    end = chunk.first_frame + frames_of(len(chunk.samples)) if chunk.keep_to is None else chunk.keep_to
    return range(chunk.keep_from, end)


def blocks(samples: np.ndarray, size: int) -> list[np.ndarray]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


@pytest.mark.parametrize("seconds", [0.01, 3.0, 8.0, 8.02, 29.9, 61.3, 300.0])
@pytest.mark.parametrize("block", [1000, 16000, 100_000])
def test_windows_tile_the_frames_exactly_and_keep_their_context(seconds: float, block: int) -> None:
    plan = ChunkPlan.from_seconds(8.0, 2.0, RATE, FRAME)
    noise = np.random.default_rng(0).standard_normal(int(seconds * RATE)).astype(np.float32) * 0.1
    pieces = list(chunks(blocks(noise, block), plan))
    ranges = [kept(c) for c in pieces]
    assert ranges[0].start == 0
    for before, after in itertools.pairwise(ranges):
        assert before.stop == after.start  # contiguous: no frame lost or repeated
    assert ranges[-1].stop == frames_of(len(noise))  # the last chunk keeps the very end
    for c in pieces[1:]:
        assert not c.after_pause
        assert c.keep_from * FRAME - c.first_frame * FRAME >= plan.context
    for c in pieces[:-1]:
        assert c.keep_to is not None
        assert (c.first_frame * FRAME + len(c.samples)) - c.keep_to * FRAME >= plan.context
        assert len(c.samples) == plan.size
    assert pieces[-1].end_sample == len(noise)


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Noise bursts shaped like syllables (4 per second): webrtcvad calls them speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    tone = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)
    return ((tone + 0.1 * rng.standard_normal(len(t))) * envelope * 0.3).astype(np.float32)


def test_pauses_become_cuts_and_long_speech_falls_back_to_windows() -> None:
    rng = np.random.default_rng(1)
    silence = np.zeros(RATE, np.float32)
    talk = [speech_like(rng, s) for s in (3.0, 2.0, 20.0, 1.0)]  # 20 s of speech outruns an 8 s window
    stream = np.concatenate([talk[0], silence, talk[1], silence, talk[2], silence, talk[3]])
    plan = ChunkPlan.from_seconds(8.0, 2.0, RATE, FRAME, pause_s=0.3)
    pieces = list(chunks(blocks(stream, 4000), plan))

    cuts = [c.first_frame * FRAME for c in pieces if c.after_pause][1:]
    pause_starts = np.cumsum([len(talk[0]), RATE + len(talk[1]), RATE + len(talk[2])])
    for pause in pause_starts:  # every real pause is cut once (the VAD may find dips inside the bursts too)
        assert sum(pause < cut < pause + RATE for cut in cuts) == 1
    long_start, long_end = pause_starts[1], pause_starts[2]  # from the pause before it to the one after
    windows = [c for c in pieces if c.keep_to is not None]
    assert windows
    assert all(long_start <= c.first_frame * FRAME < long_end for c in windows)
    ranges = [kept(c) for c in pieces]
    for before, after, c in zip(ranges, ranges[1:], pieces[1:], strict=False):
        assert after.start == before.stop or (c.after_pause and after.start >= before.stop)
    assert max(len(c.samples) for c in pieces) <= plan.size


def test_without_pause_detection_there_are_only_windows() -> None:
    stream = np.concatenate([speech_like(np.random.default_rng(2), 5.0), np.zeros(2 * RATE, np.float32)] * 3)
    pieces = list(chunks(blocks(stream, 16000), ChunkPlan.from_seconds(8.0, 2.0, RATE, FRAME)))
    assert [c.after_pause for c in pieces] == [True] + [False] * (len(pieces) - 1)


def test_silence_at_the_edges_of_pause_bounded_chunks_is_not_sent() -> None:
    """Each utterance's chunk starts at most `lead` (plus a VAD frame and a model frame) before its
    speech and ends at most `trail` (plus webrtcvad's hangover, 90-100 ms here: five 30 ms frames) after
    it, however long the silence around it; the samples consumed still count the whole stream."""
    rng = np.random.default_rng(3)
    silence = np.zeros(RATE, np.float32)
    talk = [speech_like(rng, s) for s in (2.0, 3.0)]
    stream = np.concatenate([silence, talk[0], silence, silence, talk[1], silence])
    plan = ChunkPlan.from_seconds(8.0, 2.0, RATE, FRAME, pause_s=0.3)
    pieces = list(chunks(blocks(stream, 4000), plan))
    vad_frame = RATE * 30 // 1000
    starts = [RATE, 3 * RATE + len(talk[0])]
    ends = [RATE + len(talk[0]), starts[1] + len(talk[1])]
    spans = [(c.first_frame * FRAME, c.first_frame * FRAME + len(c.samples)) for c in pieces if len(c.samples)]
    for start, end in zip(starts, ends, strict=True):
        # The VAD may find dips inside the bursts too, so an utterance may take several chunks.
        holding = [(lo, hi) for lo, hi in spans if lo < end and hi > start]
        assert start - plan.lead - vad_frame - FRAME <= holding[0][0] <= start
        assert end <= holding[-1][1] <= end + plan.trail + 5 * vad_frame
    assert all(any(lo < end and hi > start for start, end in zip(starts, ends, strict=True)) for lo, hi in spans)
    assert pieces[-1].end_sample == len(stream)
    assert all(c.keep_from >= c.first_frame for c in pieces)
