"""WER and CER of a CTC model on a dataset, decoding each clip only over its own frames."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jiwer
import numpy as np

from training.collator import frames_for
from training.data import DatasetError, load_audio

if TYPE_CHECKING:
    from worker.recognizer import Recognizer

# A corpus's held-out splits (training/corpus.py): unseen sentences, and the same with an unheard voice.
HELD_OUT = ("test", "test_heldout_voice")


def transcribe_batches(model: Any, processor: Any, rows: Any, audio_column: str, batch_size: int = 16) -> list[str]:
    import torch

    model.eval()
    out: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows.select(range(start, min(start + batch_size, len(rows))))
        audio = [load_audio(r[audio_column], r.get("_base_dir")) for r in chunk]
        inputs = processor.feature_extractor(
            audio, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        with torch.no_grad():
            logits = (
                model(inputs.input_values.to(model.device), attention_mask=inputs.attention_mask.to(model.device))
                .logits.float()
                .cpu()
                .numpy()
            )
        for row_logits, frames in zip(logits, frames_for(model, [len(a) for a in audio]), strict=True):
            ids = np.argmax(row_logits[: int(frames)], axis=-1)
            out.append(processor.tokenizer.decode(ids))
    return out


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps)), "n": len(refs)}


def evaluate(
    model: Any, processor: Any, rows: Any, audio_column: str, text_column: str, batch_size: int = 16
) -> dict[str, float]:
    hypotheses = transcribe_batches(model, processor, rows, audio_column, batch_size)
    return error_rates(list(rows[text_column]), hypotheses)


def load_split(corpus: Path, split: str, max_clips: int = 0) -> list[tuple[str, Any]]:
    """(text, samples) of a corpus split's clips, the first `max_clips` of them (0: all)."""
    manifest = corpus / f"{split}.jsonl"
    if not manifest.is_file():
        raise DatasetError(
            f"{manifest} is missing: --corpus must be a corpus folder with validation.jsonl, "
            "test.jsonl and test_heldout_voice.jsonl (python -m training.corpus makes one)"
        )
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    rows = rows[:max_clips] if max_clips else rows
    return [(row["text"], load_audio(row["audio"], str(corpus))) for row in rows]


def score(recognizer: Recognizer, clips: list[tuple[str, Any]]) -> dict[str, float]:
    """WER and CER of the service's engine on `clips`, and its real-time factor (transcription only)."""
    started = time.perf_counter()
    hypotheses = [recognizer.transcribe(samples).text for _, samples in clips]
    seconds = time.perf_counter() - started
    rates = error_rates([text for text, _ in clips], hypotheses)
    audio = sum(len(samples) for _, samples in clips) / recognizer.manifest.sample_rate
    return {
        "wer": round(rates["wer"], 4),
        "cer": round(rates["cer"], 4),
        "clips": int(rates["n"]),
        "rtf_one_thread": round(seconds / audio, 5),
    }
