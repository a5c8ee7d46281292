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

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        audio = [load_audio(r[self.audio_column], r.get("_base_dir")) for r in rows]
        batch = self.processor.feature_extractor(
            audio, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        labels = self.processor.tokenizer([r[self.text_column] for r in rows], padding=True, return_tensors="pt")
        batch["labels"] = labels.input_ids.masked_fill(labels.attention_mask.ne(1), -100)
        return batch


def frames_for(model: Any, lengths: list[int]) -> np.ndarray:
    """CTC frames each clip really has, so padded frames are never decoded."""
    import torch

    return model._get_feat_extract_output_lengths(torch.tensor(lengths)).numpy()  # type: ignore[no-any-return]
