"""python -m export CHECKPOINT --out models/NAME

CHECKPOINT is a Hugging Face hub id (e.g. a Turkish fine-tune of facebook/wav2vec2-large-xlsr-53, or
facebook/mms-1b-all with --target-lang tur) or a local folder saved with `save_pretrained`, of any
CTC family in transformers for speech (wav2vec2 and its conformer, HuBERT, WavLM, Data2Vec-Audio,
UniSpeech, SEW, Wav2Vec2-BERT). Writes model.onnx, model.int8.onnx, vocab.json and
manifest.json, after checking that the ONNX logits match PyTorch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.onnx_export import ExportError, ExportOptions, export_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoint",
        help="Hub id or local folder of a CTC checkpoint: wav2vec2, wav2vec2-conformer, HuBERT, WavLM, "
        "Data2Vec-Audio, UniSpeech(-SAT), SEW(-D), Wav2Vec2-BERT.",
    )
    parser.add_argument("--out", type=Path, required=True, help="Model folder to write (replaced if present).")
    parser.add_argument("--name", help="Model name served by the api (default: the folder's name).")
    parser.add_argument("--language", default="tr")
    parser.add_argument("--description", default="")
    parser.add_argument("--no-int8", action="store_true", help="Write only the fp32 model.")
    parser.add_argument(
        "--dev-set",
        help="Parity gate data: a folder of {split}.jsonl manifests, a manifest "
        "file or a hub id (columns `audio` and `text`).",
    )
    parser.add_argument("--dev-split", default="validation")
    parser.add_argument("--dev-max-clips", type=int, default=300)
    parser.add_argument(
        "--max-int8-wer-increase",
        type=float,
        default=0.01,
        help="Fail when INT8 WER exceeds fp32 WER by more than this (default: 1 point).",
    )
    parser.add_argument(
        "--conv-features",
        action="store_true",
        help="Export the convolutional feature encoder as Conv1d layers (kept fp32) instead of "
        "time-major MatMuls that INT8 also covers (faster; see docs/BENCHMARKS.md).",
    )
    parser.add_argument(
        "--int8-only", action="store_true", help="After the checks, keep only model.int8.onnx (smaller folder to ship)."
    )
    parser.add_argument(
        "--target-lang",
        help="For a multilingual MMS checkpoint: the language whose adapter and vocabulary to export (e.g. tur).",
    )
    parser.add_argument(
        "--keep-case",
        action="store_true",
        help="Write transcripts in the vocabulary's own case (default: Turkish lower case, İ → i, I → ı).",
    )
    args = parser.parse_args(argv)
    options = ExportOptions(
        name=args.name or args.out.name,
        language=args.language,
        quantize=not args.no_int8,
        description=args.description,
        dev_set=args.dev_set,
        dev_split=args.dev_split,
        dev_max_clips=args.dev_max_clips,
        max_int8_wer_increase=args.max_int8_wer_increase,
        keep_fp32=not args.int8_only,
        time_major_features=not args.conv_features,
        target_lang=args.target_lang,
        keep_case=args.keep_case,
    )
    try:
        manifest = export_checkpoint(args.checkpoint, args.out, options)
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    for name, entry in manifest.files.items():
        print(f"{name:20s} {entry.bytes / 1e6:9.3f} MB  sha256 {entry.sha256[:12]}")
    print(f"metrics: {manifest.metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
