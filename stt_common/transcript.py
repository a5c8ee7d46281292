"""The result of a transcription, as the engine returns it and the database stores it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the audio
    end: float
    confidence: float  # mean per-frame probability of the word's characters, 0..1


@dataclass(frozen=True)
class Segment:
    """A run of words for one subtitle cue: split at pauses and at a maximum length."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SegmentRules:
    pause_s: float = 0.5  # a silence at least this long ends a segment
    max_seconds: float = 7.0
    max_chars: int = 84  # two subtitle lines of 42 characters


def segment(words: list[Word], rules: SegmentRules = SegmentRules()) -> list[Segment]:
    segments: list[Segment] = []
    run: list[Word] = []

    def close() -> None:
        if run:
            segments.append(Segment(start=run[0].start, end=run[-1].end, text=" ".join(w.word for w in run)))
            run.clear()

    for word in words:
        if run:
            paused = word.start - run[-1].end >= rules.pause_s
            too_long = word.end - run[0].start > rules.max_seconds
            too_wide = sum(len(w.word) + 1 for w in run) + len(word.word) > rules.max_chars
            if paused or too_long or too_wide:
                close()
        run.append(word)
    close()
    return segments


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    duration_s: float = 0.0
    model: str = ""
    raw_text: str | None = None  # the recognizer's own text, when `text` is the formatted one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        words = [Word(**w) for w in data.get("words", [])]
        stored = data.get("segments")
        return cls(
            text=data["text"],
            words=words,
            segments=[Segment(**s) for s in stored] if stored is not None else segment(words),
            duration_s=data.get("duration_s", 0.0),
            model=data.get("model", ""),
            raw_text=data.get("raw_text"),
        )
