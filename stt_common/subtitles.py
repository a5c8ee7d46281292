"""SRT and WebVTT from transcript segments: cues in time order, never overlapping."""

from __future__ import annotations

from stt_common.transcript import Segment


def _clock(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(segments: list[Segment]) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text), clipped so a cue ends no later than the next one starts."""
    cues = []
    for i, seg in enumerate(segments):
        start, end = round(seg.start * 1000), round(seg.end * 1000)
        if i + 1 < len(segments):
            end = min(end, round(segments[i + 1].start * 1000))
        cues.append((start, max(end, start + 1), seg.text.replace("\n", " ")))
    return cues


def to_srt(segments: list[Segment]) -> str:
    blocks = [
        f"{n}\n{_clock(a / 1000, ',')} --> {_clock(b / 1000, ',')}\n{text}\n"
        for n, (a, b, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: list[Segment]) -> str:
    blocks = [f"{_clock(a / 1000, '.')} --> {_clock(b / 1000, '.')}\n{text}\n" for a, b, text in _cues(segments)]
    return "WEBVTT\n\n" + "\n".join(blocks)
