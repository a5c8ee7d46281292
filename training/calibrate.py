"""Tune a model's word-delimiter bonus on the validation split, then score the held-out splits with it.

    python -m training.calibrate --model models/tr-espeak-small --corpus build/corpus [--write]

Greedy CTC picks, frame by frame, the most likely token. A small model often prefers the blank over the
word delimiter between two words, so words run together ("birköy") and the word error rate is far worse
than the character error rate suggests. Adding a bonus to the delimiter's logit before that choice
brings the spaces back. The bonus is chosen on the validation split only (sentences held out from
training, and from the test splits); `--write` stores it in manifest.json (`word_delimiter_bonus`, read
by the service's decoder) with the measurements, and adds them to the model card.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from stt_common.model_folder import read_manifest, write_manifest
from training import evaluate
from training.data import DatasetError
from training.evaluate import HELD_OUT, load_split
from training.model_card import put_section
from worker.recognizer import Recognizer

BONUSES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
CARD_START, CARD_END = "<!-- calibration:start -->", "<!-- calibration:end -->"


def score(recognizer: Recognizer, clips: list[tuple[str, Any]], bonus: float) -> dict[str, float]:
    recognizer.decoder.delimiter_bonus = bonus
    return evaluate.score(recognizer, clips)


def calibrate(model: Path, corpus: Path, variant: str = "int8", max_clips: int = 0) -> dict[str, Any]:
    recognizer = Recognizer.load(model, variant=variant, threads=1, language_model=False)  # the greedy decoder's
    validation = load_split(corpus, "validation", max_clips)
    sweep = {bonus: score(recognizer, validation, bonus) for bonus in BONUSES}
    for bonus, rates in sweep.items():
        print(f"validation  bonus {bonus:3.1f}  WER {rates['wer']:.4f}  CER {rates['cer']:.4f}", flush=True)
    chosen = min(BONUSES, key=lambda b: (sweep[b]["wer"], b))
    held_out = {}
    for split in HELD_OUT:
        clips = load_split(corpus, split, max_clips)
        held_out[split] = {"without": score(recognizer, clips, 0.0), "with": score(recognizer, clips, chosen)}
        print(
            f"{split:18s}  WER {held_out[split]['without']['wer']:.4f} -> {held_out[split]['with']['wer']:.4f}  "
            f"CER {held_out[split]['without']['cer']:.4f} -> {held_out[split]['with']['cer']:.4f}",
            flush=True,
        )
    return {
        "variant": variant,
        "bonus": chosen,
        "validation_sweep": {str(b): r for b, r in sweep.items()},
        "held_out": held_out,
        "date": time.strftime("%Y-%m-%d"),
    }


def card_section(result: dict[str, Any]) -> str:
    rows = [
        f"| {split} | {r['without']['wer']:.3f} | {r['without']['cer']:.3f} | {r['with']['wer']:.3f} "
        f"| {r['with']['cer']:.3f} |"
        for split, r in result["held_out"].items()
    ]
    sweep = ", ".join(f"{b}: {r['wer']:.3f}" for b, r in result["validation_sweep"].items())
    return "\n".join(
        [
            CARD_START,
            "## Decoding calibration",
            f"`python -m training.calibrate` ({result['date']}): greedy CTC dropped many spaces between words, so "
            "a bonus on the word delimiter's logit was chosen on the validation split (WER by bonus: "
            f"{sweep}) and stored in manifest.json: **{result['bonus']}**. Held-out sentences, "
            f"{result['variant'].upper()}, through the service's engine:",
            "",
            "| split | WER without | CER without | WER with | CER with |",
            "|---|---|---|---|---|",
            *rows,
            CARD_END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="A servable model folder.")
    parser.add_argument("--corpus", type=Path, required=True, help="The corpus (validation and test splits).")
    parser.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--max-clips", type=int, default=0, help="Use only this many clips a split (0 = all).")
    parser.add_argument("--write", action="store_true", help="Store the bonus in the manifest and the model card.")
    args = parser.parse_args()

    try:
        result = calibrate(args.model, args.corpus, args.variant, args.max_clips)
    except DatasetError as exc:
        raise SystemExit(f"calibrate: {exc}") from None
    print(json.dumps({"bonus": result["bonus"], "held_out": result["held_out"]}, indent=1))
    if args.write:
        manifest = read_manifest(args.model)
        manifest.word_delimiter_bonus = result["bonus"]
        manifest.metrics["calibration"] = result
        write_manifest(args.model, manifest)
        put_section(args.model / "README.md", CARD_START, CARD_END, card_section(result))


if __name__ == "__main__":
    main()
