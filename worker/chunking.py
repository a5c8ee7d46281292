"""Cutting a stream of samples into the pieces the model transcribes, in memory bounded by one window.

Two kinds of cut (docs/BENCHMARKS.md compares them):

- **At pauses.** webrtcvad marks each 30 ms as speech or not; a pause of at least `min_pause` that
  follows speech ends a chunk at its middle. Each such chunk is transcribed on its own, the way the
  model was trained (one utterance, normalised by itself), and no word can straddle the cut. Silence
  at a chunk's edges beyond `lead` before its first speech and `trail` after its last is not sent to
  the model: models trained on tightly cut clips misread utterances wrapped in long silence (on 60
  held-out test sentences the bundled model read WER 0.27 alone and 0.45 with 0.5 s of silence after
  each when sent whole; trimmed, 0.245 both ways), and it saves the compute. Those frames produce
  nothing.
- **In overlapping windows**, where speech runs on for longer than `size` without such a pause.
  Consecutive windows overlap by `2 * context`; a window contributes only the frames of its middle
  part, where the model heard `context` of audio on both sides, so the kept frames tile the audio
  exactly and one CTC pass decodes them: no word lost or doubled at a seam.

    |<-------------- window k -------------->|
    | context |        kept         | context|
                        |<-------------- window k+1 ------------->|
                        | context |        kept         | context |
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)
LEAD_SECONDS = 0.1  # silence kept before the first speech of a chunk bounded by pauses
TRAIL_SECONDS = 0.05  # and after its last speech


@dataclass(frozen=True)
class Chunk:
    samples: np.ndarray
    first_frame: int  # global index of the model's first output frame for this chunk
    keep_from: int  # global frame range this chunk contributes: [keep_from, keep_to)
    keep_to: int | None  # None: through the chunk's last frame
    after_pause: bool  # the chunk starts at a pause cut: no word continues from the previous one
    end_sample: int  # samples of the stream consumed once this chunk is done


@dataclass(frozen=True)
class ChunkPlan:
    size: int  # samples per window, and the longest chunk
    context: int  # samples of context on each side of a window's kept part
    frame: int  # samples per model output frame
    rate: int
    min_pause: int = 0  # samples of non-speech that end a chunk; 0: windows only, no VAD
    vad_mode: int = 2  # webrtcvad aggressiveness, 0 (keeps most as speech) to 3
    lead: int = 0  # samples of silence kept before a pause-bounded chunk's first speech (from_seconds:
    trail: int = 0  # LEAD_SECONDS) and after its last (TRAIL_SECONDS)

    @classmethod
    def from_seconds(
        cls, window_s: float, overlap_s: float, rate: int, frame: int, *, pause_s: float = 0.0, vad_mode: int = 2
    ) -> ChunkPlan:
        """Round to whole frames so every chunk's frames line up with the global frame grid."""
        context = max(1, round(overlap_s / 2 * rate / frame)) * frame
        size = max(round(window_s * rate / frame) * frame, 4 * context)
        if pause_s and rate not in VAD_RATES:
            raise ValueError(f"pause detection needs a sample rate of {VAD_RATES} Hz, not {rate}")
        return cls(
            size=size,
            context=context,
            frame=frame,
            rate=rate,
            min_pause=round(pause_s * rate),
            vad_mode=vad_mode,
            lead=round(LEAD_SECONDS * rate),
            trail=round(TRAIL_SECONDS * rate),
        )

    @property
    def step(self) -> int:
        return self.size - 2 * self.context


class _Pauses:
    """webrtcvad verdicts for the 30 ms frames of the stream, from a moving start onwards."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.vad = webrtcvad.Vad(plan.vad_mode)
        self.rate = plan.rate
        self.width = plan.rate * 30 // 1000
        self.min_run = max(1, -(-plan.min_pause // self.width))
        self.base = 0  # global index of speech[0]
        self.speech: list[bool] = []

    def analyse(self, buffer: np.ndarray, start: int) -> None:
        """Judge every complete 30 ms frame of the buffer not judged yet."""
        first = self.base + len(self.speech)
        last = (start + len(buffer)) // self.width
        unjudged = buffer[first * self.width - start : last * self.width - start]
        pcm = (np.clip(unjudged, -1.0, 1.0) * 32767).astype(np.int16)
        for k in range(last - first):
            piece = pcm[k * self.width : (k + 1) * self.width]
            self.speech.append(self.vad.is_speech(piece.tobytes(), self.rate))

    def cut(self, start: int) -> int | None:
        """The middle of the first long enough pause after speech, after `start`; None if none yet.
        A pause still running at the end of what was judged does not count: speech must follow it."""
        first = max(0, -(-start // self.width) - self.base)  # the first frame wholly after `start`
        heard, run = False, 0
        for k in range(first, len(self.speech)):
            if self.speech[k]:
                if heard and run >= self.min_run:
                    return int((self.base + k - run / 2) * self.width)
                heard, run = True, 0
            elif heard:
                run += 1
        return None

    def speech_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Sample positions from the first judged speech frame's start to the last one's end within
        [start, end); None when no judged frame there is speech."""
        first = max(0, -(-start // self.width) - self.base)
        last = min(len(self.speech), end // self.width - self.base)
        found = [k for k in range(first, last) if self.speech[k]]
        if not found:
            return None
        return (self.base + found[0]) * self.width, (self.base + found[-1] + 1) * self.width

    def forget_before(self, start: int) -> None:
        drop = max(0, start // self.width - self.base)
        del self.speech[:drop]
        self.base += drop


def chunks(blocks: Iterable[np.ndarray], plan: ChunkPlan) -> Iterator[Chunk]:
    pauses = _Pauses(plan) if plan.min_pause else None
    buffer = np.zeros(0, np.float32)
    start = 0  # stream position of buffer[0]
    keep_from = 0  # global frame the next chunk contributes from
    after_pause = True

    def bounded_by_pauses(end: int) -> Chunk:
        """buffer[:end - start] as a chunk that ends at a pause or the stream's end, without the silence
        beyond plan.lead / plan.trail at its edges (its start only if it begins at a pause too)."""
        lo, hi = start, end
        span = pauses.speech_span(start, end) if pauses is not None else None
        if span is not None:
            hi = min(end, span[1] + plan.trail)
            if after_pause:
                lo = max(start, start + (span[0] - plan.lead - start) // plan.frame * plan.frame)
        first = lo // plan.frame
        return Chunk(buffer[lo - start : hi - start], first, max(keep_from, first), None, after_pause, end)

    def advance(to: int) -> None:
        nonlocal buffer, start
        buffer = buffer[to - start :]
        start = to
        if pauses is not None:
            pauses.forget_before(start)

    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        if pauses is not None:
            pauses.analyse(buffer, start)
        while True:
            # Only audio not yet contributed by a window may be cut.
            cut = pauses.cut(max(start, keep_from * plan.frame)) if pauses is not None else None
            if cut is not None:
                cut = cut // plan.frame * plan.frame
            if cut is not None and start < cut <= start + plan.size:
                yield bounded_by_pauses(cut)
                advance(cut)
                keep_from, after_pause = cut // plan.frame, True
            elif len(buffer) > plan.size:  # strictly more: only then is this surely not the last chunk
                kept_to = (start + plan.size - plan.context) // plan.frame
                yield Chunk(
                    buffer[: plan.size],
                    start // plan.frame,
                    keep_from,
                    kept_to,
                    after_pause,
                    start + plan.size - plan.context,
                )
                advance(start + plan.step)
                keep_from, after_pause = kept_to, False
            else:
                break
    if len(buffer) or start == 0:
        yield bounded_by_pauses(start + len(buffer))
