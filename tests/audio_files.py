"""Real audio files for tests, encoded with PyAV (ffmpeg's encoders), and Turkish speech from espeak-ng."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class Format:
    name: str
    container: str  # ffmpeg muxer
    codec: str
    lossless: bool
    rates: tuple[int, ...] = (8000, 16000, 22050, 44100, 48000)
    video: bool = False  # add a video track before the sound, as a phone or screen recording has
    channel_counts: tuple[int, ...] = (1, 2)


ALL_RATES = (8000, 16000, 22050, 44100, 48000)
OPUS_RATES = (8000, 16000, 48000)  # Opus codes only 8/12/16/24/48 kHz
STEREO_ONLY = (2,)  # ffmpeg's own Vorbis encoder (the wheel has no libvorbis) writes stereo only
FORMATS = [
    Format("wav-u8", "wav", "pcm_u8", False),  # 8-bit samples: 48 dB of quantisation noise
    Format("wav-s16", "wav", "pcm_s16le", True),
    Format("wav-s24", "wav", "pcm_s24le", True),
    Format("wav-s32", "wav", "pcm_s32le", True),
    Format("wav-f32", "wav", "pcm_f32le", True),
    Format("flac", "flac", "flac", True),
    Format("ogg-vorbis", "ogg", "vorbis", False, channel_counts=STEREO_ONLY),
    Format("ogg-opus", "ogg", "libopus", False, OPUS_RATES),
    Format("mp3", "mp3", "libmp3lame", False),
    Format("m4a-aac", "ipod", "aac", False),
    Format("webm-opus", "webm", "libopus", False, OPUS_RATES),
    Format("mp4-video-aac", "mp4", "aac", False, video=True),
    Format("mkv-video-vorbis", "matroska", "vorbis", False, video=True, channel_counts=STEREO_ONLY),
]


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    return samples if rate == target else soxr.resample(samples, rate, target).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: Format, channels: int = 1) -> bytes:
    """Encode mono float32 `samples` at `rate` (duplicated to stereo when channels == 2)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt.container) as out:
        video = out.add_stream("mpeg4", rate=25) if fmt.video else None
        stream: av.AudioStream = out.add_stream(fmt.codec, rate=rate, options={"strict": "experimental"})  # type: ignore[assignment]
        stream.layout = "stereo" if channels == 2 else "mono"
        stream.time_base = Fraction(1, rate)
        if video is not None:  # every stream exists before the first packet is written
            _black_video(out, video, seconds=len(samples) / rate)
        planar = (stream.codec_context.codec.audio_formats or [])[0].is_planar
        data = np.stack([samples] * channels) if channels == 2 else samples[np.newaxis, :]
        step = stream.codec_context.frame_size or 4096
        for start in range(0, data.shape[1], step):
            chunk = np.ascontiguousarray(data[:, start : start + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(
                chunk if planar else chunk.T.reshape(1, -1),
                format="fltp" if planar else "flt",
                layout=stream.layout.name,
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _black_video(out: av.container.OutputContainer, video: av.VideoStream, seconds: float) -> None:
    video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
    black = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    for i in range(max(1, int(seconds * 25))):
        black.pts, black.time_base = i, Fraction(1, 25)
        for packet in video.encode(black):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)


def silence_opus_webm(seconds: float) -> bytes:
    """Hours of silence in a few hundred kB, written as a live stream would (no duration in the header)."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    sink = Unseekable()
    with av.open(sink, "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000, options={"b": "6000"})
        stream.layout = "mono"
        step = 960 * 50  # one second per frame keeps the Python loop short
        zeros = np.zeros((1, step), np.float32)
        total = int(seconds * 48000)
        for start in range(0, total, step):
            frame = av.AudioFrame.from_ndarray(zeros, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return bytes(sink.data)


def video_without_sound() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        for i in range(10):
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return buf.getvalue()


def wav_with_channels(channels: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((1600, channels), np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def wav_with_layout(layout: str, samples: np.ndarray, rate: int) -> bytes:
    """Mono samples on every channel of a named ffmpeg layout (5.1, 7.1, ...): a WAVE_FORMAT_EXTENSIBLE
    file with its channel mask, as `ffmpeg -af aformat=channel_layouts=7.1` writes it."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        interleaved = np.repeat((samples * 32767).astype(np.int16), stream.layout.nb_channels).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()
