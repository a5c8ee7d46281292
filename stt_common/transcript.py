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
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    duration_s: float = 0.0
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            text=data["text"],
            words=[Word(**w) for w in data.get("words", [])],
            duration_s=data.get("duration_s", 0.0),
            model=data.get("model", ""),
        )
