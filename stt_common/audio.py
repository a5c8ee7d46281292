"""Audio probing (cheap, for the api) and decoding to model-ready mono float32 (for the worker)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from stt_common.errors import AudioTooLong, EmptyAudio, InvalidAudio

Source = str | Path | BinaryIO


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _rewind(source: Source) -> None:
    if hasattr(source, "seek"):
        source.seek(0)


def probe(source: Source) -> AudioInfo:
    """Read only the container header: format, rate, channels and length."""
    _rewind(source)
    try:
        info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InvalidAudio(f"the file is not audio in a supported format ({_reason(exc)})") from exc
    finally:
        _rewind(source)
    if info.samplerate <= 0 or info.channels <= 0:
        raise InvalidAudio("the audio header is invalid (no sample rate or channels)")
    if _truncated(info.extra_info):
        raise InvalidAudio("the audio file is truncated: its header promises more data than it holds")
    return AudioInfo(format=info.format.lower(), sample_rate=info.samplerate, channels=info.channels,
                     frames=int(info.frames))


def check_limits(info: AudioInfo, max_seconds: float) -> None:
    if info.frames <= 0:
        raise EmptyAudio("the audio contains no samples")
    if info.duration_s > max_seconds:
        raise AudioTooLong(
            f"the audio lasts {info.duration_s:.1f} s; the limit is {max_seconds:.0f} s"
        )


def decode(source: Source, target_rate: int, max_seconds: float) -> np.ndarray:
    """Decode to mono float32 at `target_rate`, enforcing the duration limit while reading."""
    info = probe(source)
    check_limits(info, max_seconds)
    max_frames = int(max_seconds * info.sample_rate) + 1
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True, frames=max_frames)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise InvalidAudio(f"the audio could not be decoded ({_reason(exc)})") from exc
    if data.shape[0] >= max_frames:
        raise AudioTooLong(f"the audio decodes to more than {max_seconds:.0f} s")
    if data.shape[0] == 0:
        raise EmptyAudio("the audio contains no samples")
    if not np.isfinite(data).all():
        raise InvalidAudio("the audio contains NaN or infinite samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != target_rate:
        mono = soxr.resample(mono, rate, target_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


# libsndfile logs "data : 186348 (should be 956)" when a chunk header promises more than the file holds.
_SHORT_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = 0x7FFFFFFF  # streaming writers put 0 or 0xFFFFFFFF here: length unknown, not truncated


def _truncated(log: str) -> bool:
    match = _SHORT_CHUNK.search(log or "")
    if not match:
        return False
    declared, actual = int(match.group(1)), int(match.group(2))
    return 0 < declared < _UNKNOWN_LENGTH and declared > actual


def _reason(exc: BaseException) -> str:
    """libsndfile's message without the file object's repr it starts with."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rsplit(": ", 1)[-1][:200]
