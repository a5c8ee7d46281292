"""Loading speech datasets (a hub id, a local folder of JSON-lines manifests, or one manifest file) and
their audio, without relying on `datasets`' own audio decoding."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soxr

SAMPLE_RATE = 16000


class DatasetError(ValueError):
    """The dataset cannot be used as configured; the message says what to change."""


def load_split(dataset: str, split: str, *, config: str | None = None) -> Any:
    """`dataset` is a hub id, a folder with `{split}.jsonl`, or a `.jsonl`/`.json`/`.csv` manifest."""
    import datasets

    path = Path(dataset)
    if path.is_dir():
        manifest = path / f"{split}.jsonl"
        if not manifest.is_file():
            found = sorted(p.name for p in path.glob("*.jsonl"))
            raise DatasetError(f"{path} has no {manifest.name} (found: {found or 'no manifests'})")
        loaded = datasets.load_dataset("json", data_files=str(manifest), split="train")
        return loaded.add_column("_base_dir", [str(path)] * len(loaded))
    if path.suffix in (".jsonl", ".json", ".csv") and path.is_file():
        kind = "csv" if path.suffix == ".csv" else "json"
        loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
        return loaded.add_column("_base_dir", [str(path.parent)] * len(loaded))
    loaded = datasets.load_dataset(dataset, config, split=split)
    return loaded


def check_columns(data: Any, audio_column: str, text_column: str) -> None:
    missing = [c for c in (audio_column, text_column) if c not in data.column_names]
    if missing:
        raise DatasetError(
            f"the dataset has no column(s) {missing}; its columns are {data.column_names}. "
            "Choose them with --audio_column_name / --text_column_name"
        )


def undecoded(data: Any, audio_column: str) -> Any:
    """Hub datasets decode audio with their own backend; we read the bytes ourselves instead."""
    import datasets

    feature = data.features.get(audio_column)
    if isinstance(feature, datasets.Audio):
        return data.cast_column(audio_column, datasets.Audio(decode=False))
    return data


MAX_CLIP_SECONDS = 3600.0


def load_audio(value: Any, base_dir: str | None = None) -> np.ndarray:
    """Mono float32 at 16 kHz from a path, a {path, bytes} dict, or a decoded {array, sampling_rate}.
    Files go through the worker's own decoder (stt_common.audio), so training hears what serving hears;
    mono 16 kHz FLAC and WAV are read directly, to the same samples."""
    if isinstance(value, dict) and value.get("array") is not None:
        samples = np.asarray(value["array"], dtype=np.float32)
        samples = samples.mean(axis=1) if samples.ndim == 2 else samples
        if samples.size == 0:
            raise DatasetError("an audio row has no samples")
        rate = int(value["sampling_rate"])
        return np.ascontiguousarray(
            soxr.resample(samples, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else samples, dtype=np.float32
        )
    if isinstance(value, dict) and value.get("bytes"):
        source: Any = io.BytesIO(value["bytes"])
    else:
        raw = value.get("path") if isinstance(value, dict) else value
        if not raw:
            raise DatasetError("an audio row is empty")
        source = Path(raw) if Path(raw).is_absolute() or base_dir is None else Path(base_dir) / raw
        if not source.is_file():
            raise DatasetError(f"an audio row cannot be read: no file {source}")
    if isinstance(source, Path) and source.suffix.lower() in LOSSLESS:
        lossless = _read_lossless(source)
        if lossless is not None:
            return lossless
    from stt_common import audio  # PyAV, opened only for what libsndfile did not take
    from stt_common.errors import InputError

    try:
        return audio.decode(source, SAMPLE_RATE, max_seconds=MAX_CLIP_SECONDS)
    except InputError as exc:
        raise DatasetError(f"an audio row cannot be read ({exc.code}): {exc.message}") from exc


LOSSLESS = (".flac", ".wav")


def _read_lossless(path: Path) -> np.ndarray | None:
    """A mono 16 kHz FLAC or WAV (what the corpus builder writes) read straight with libsndfile: the
    same samples the service's decoder gives (tests/test_training.py checks), without opening a
    container per clip on every epoch. None for anything else, which goes through the service's
    decoder."""
    import soundfile as sf

    try:
        with sf.SoundFile(path) as fh:
            if fh.channels != 1 or fh.samplerate != SAMPLE_RATE or fh.subtype not in ("PCM_16", "PCM_24"):
                return None
            samples = fh.read(dtype="float32")
    except (sf.LibsndfileError, RuntimeError):
        return None
    if samples.size == 0:
        raise DatasetError(f"an audio row has no samples: {path}")
    return samples
