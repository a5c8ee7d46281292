"""Writes the hostile-input corpus next to this file (deterministic; the files are committed):

    python tests/hostile/make_corpus.py

Each file's expected outcome is in expected.json: refused at upload (`status`, `code`), or accepted and
then `failed` with a `code`, or accepted and `succeeded`. tests/test_hostile.py runs every file through
the real api and a real worker.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from tests.audio_files import video_without_sound, wav_with_layout  # noqa: E402

FILES = HERE / "files"
SAMPLES = HERE.parent.parent / "samples"
RATE = 16000


def tone(seconds: float) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * RATE)) * 0.06) * 0.3).astype(np.float32)


def wav(samples: np.ndarray, subtype: str = "PCM_16", rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def wav_header(channels: int, data_bytes: int, riff_bytes: int) -> bytes:
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, RATE, RATE * 2 * channels, 2 * channels, 16)
    return b"RIFF" + struct.pack("<I", riff_bytes) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", data_bytes)


def flac_declaring_hours() -> bytes:
    """Two hours of silence at 8 kHz: tiny once compressed, and its header says 7200 s."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000 * 7200, np.float32), 8000, format="FLAC")
    return buf.getvalue()


def with_samples(value: float) -> bytes:
    samples = tone(1.0)
    samples[4000:4100] = value
    return wav(samples, "FLOAT")


CORPUS: dict[str, tuple[bytes, dict[str, object]]] = {
    "empty.wav": (b"", {"status": 400, "code": "empty_file"}),
    "text-named.wav": ("Merhaba, bu bir ses dosyası değil.\n".encode() * 20, {"status": 415, "code": "invalid_audio"}),
    "image.png": (b"\x89PNG\r\n\x1a\n" + bytes(200), {"status": 415, "code": "invalid_audio"}),
    "playlist.m3u": (
        b"#EXTM3U\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data\n",
        {"status": 415, "code": "invalid_audio"},
    ),
    "zero-samples.wav": (wav(np.zeros(0, np.float32)), {"status": 422, "code": "empty_audio"}),
    "ten-ms.wav": (wav(tone(0.01)), {"status": 422, "code": "audio_too_short"}),
    "truncated.wav": ((SAMPLES / "clip01.wav").read_bytes()[:1000], {"status": 422, "code": "truncated_audio"}),
    "truncated.ogg": ((SAMPLES / "clip03.ogg").read_bytes()[:20000], {"status": 422, "code": "truncated_audio"}),
    "header-255-channels.wav": (
        wav_header(255, 255 * 2 * 10, 36 + 255 * 2 * 10) + bytes(255 * 2 * 10),
        {"status": 415, "code": "unsupported_audio"},
    ),
    "video-without-sound.mp4": (video_without_sound(), {"status": 422, "code": "no_audio_stream"}),
    "declares-two-hours.flac": (flac_declaring_hours(), {"status": 422, "code": "audio_too_long"}),
    "nan-samples.wav": (with_samples(np.nan), {"job": "failed", "code": "invalid_audio"}),
    "inf-samples.wav": (with_samples(np.inf), {"job": "failed", "code": "invalid_audio"}),
    # A header that claims 4 GB: the size placeholder of a streamed WAV. The real length is used.
    "claims-4gb.wav": (
        wav_header(1, 0xFFFFFFE0, 0xFFFFFFF0) + (tone(1.0) * 32767).astype("<i2").tobytes(),
        {"job": "succeeded"},
    ),
    # ffmpeg's 7.1 layout: eight planar channels once crashed the worker's decoder (a segfault in PyAV).
    "layout-7.1.wav": (wav_with_layout("7.1", tone(0.5)[::2], RATE // 2), {"job": "succeeded"}),
    "thirty-two-channels.wav": (wav(np.tile(tone(0.25)[::2], (32, 1)).T, rate=RATE // 2), {"job": "succeeded"}),
    # A FLAC file named .mp3: the content decides, not the name.
    "flac-named.mp3": ((SAMPLES / "clip02.flac").read_bytes(), {"job": "succeeded"}),
}
# Uploaded under a hostile client filename; stored under a key the service makes.
FILENAMES = {"flac-named.mp3": "../../../etc/passwd.mp3"}


def main() -> None:
    FILES.mkdir(exist_ok=True)
    expected = {}
    for name, (content, outcome) in CORPUS.items():
        (FILES / name).write_bytes(content)
        expected[name] = {**outcome, "filename": FILENAMES.get(name, name)}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for name in sorted(CORPUS):
        print(f"{(FILES / name).stat().st_size:>8}  {name}")


if __name__ == "__main__":
    main()
