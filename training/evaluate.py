"""WER and CER of a CTC model on a dataset, decoding each clip only over its own frames."""

from __future__ import annotations

from typing import Any

import jiwer
import numpy as np

from training.collator import frames_for
from training.data import load_audio


def transcribe_batches(model: Any, processor: Any, rows: Any, audio_column: str, batch_size: int = 16) -> list[str]:
    import torch

    model.eval()
    out: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows.select(range(start, min(start + batch_size, len(rows))))
        audio = [load_audio(r[audio_column], r.get("_base_dir")) for r in chunk]
        inputs = processor.feature_extractor(audio, sampling_rate=16000, padding=True,
                                             return_attention_mask=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(inputs.input_values.to(model.device),
                           attention_mask=inputs.attention_mask.to(model.device)).logits.float().cpu().numpy()
        for row_logits, frames in zip(logits, frames_for(model, [len(a) for a in audio]), strict=True):
            ids = np.argmax(row_logits[: int(frames)], axis=-1)
            out.append(processor.tokenizer.decode(ids))
    return out


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps)), "n": len(refs)}


def evaluate(model: Any, processor: Any, rows: Any, audio_column: str, text_column: str,
             batch_size: int = 16) -> dict[str, float]:
    hypotheses = transcribe_batches(model, processor, rows, audio_column, batch_size)
    return error_rates(list(rows[text_column]), hypotheses)
