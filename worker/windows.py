"""Overlapping windows over a stream of samples, so audio of any length is transcribed in bounded memory.

Each window is `size` samples; consecutive windows overlap by `2 * context`. A window contributes only
the frames of its middle part, where the model saw `context` seconds of audio on both sides; the first
window also contributes its start and the last its end. The kept ranges tile the audio exactly, so the
frames concatenate into one sequence that a single CTC pass decodes: no word lost or doubled at a seam.

    |<-------------- window k -------------->|
    | context |        kept         | context|
                        |<-------------- window k+1 ------------->|
                        | context |        kept         | context |
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    samples: np.ndarray
    first_frame: int  # global index of the model's first output frame for this window
    keep_from: int  # global frame range this window contributes: [keep_from, keep_to)
    keep_to: int | None  # None: through the window's last frame (the final window)
    end_sample: int  # samples of the stream consumed once this window is done


@dataclass(frozen=True)
class WindowPlan:
    size: int  # samples per window
    context: int  # samples of context on each side of the kept part
    frame: int  # samples per model output frame

    @classmethod
    def from_seconds(cls, window_s: float, overlap_s: float, rate: int, frame: int) -> WindowPlan:
        """Round to whole frames so every window's frames line up with the global frame grid."""
        context = max(1, round(overlap_s / 2 * rate / frame)) * frame
        size = max(round(window_s * rate / frame) * frame, 4 * context)
        return cls(size=size, context=context, frame=frame)

    @property
    def step(self) -> int:
        return self.size - 2 * self.context


def windows(blocks: Iterable[np.ndarray], plan: WindowPlan) -> Iterator[Window]:
    """Cut the stream into windows; holds at most one window plus one block of samples."""
    buffer = np.zeros(0, np.float32)
    start = 0  # stream position of buffer[0]
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        # Strictly more than a window: only then is it certain this is not the final one.
        while len(buffer) > plan.size:
            yield Window(
                samples=buffer[: plan.size],
                first_frame=start // plan.frame,
                keep_from=0 if start == 0 else (start + plan.context) // plan.frame,
                keep_to=(start + plan.size - plan.context) // plan.frame,
                end_sample=start + plan.size - plan.context,
            )
            buffer = buffer[plan.step:]
            start += plan.step
    if len(buffer) or start == 0:
        yield Window(
            samples=buffer,
            first_frame=start // plan.frame,
            keep_from=0 if start == 0 else (start + plan.context) // plan.frame,
            keep_to=None,
            end_sample=start + len(buffer),
        )
