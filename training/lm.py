"""Give a model folder a character language model: build it from the corpus's training texts, tune the
beam search's weights on the validation split, score the held-out splits greedy and with it.

    python -m training.lm --model models/tr-espeak-small --corpus build/corpus [--write]

The model is a Kneser-Ney character n-gram (arpabo) over the distinct training texts only, written as a
gzipped ARPA file KenLM reads. `--write` copies it into the folder as lm.arpa.gz, records it and the
chosen weights in manifest.json (`language_model`, read by the worker's decoder) with the measurements,
and adds them to the model card. Run it after `python -m training.calibrate`: greedy decoding (the
baseline here, and the service's with STT_LANGUAGE_MODEL=false) keeps the calibrated delimiter bonus.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from stt_common.model_folder import LanguageModel, file_entry, read_manifest, read_vocab, write_manifest
from training.data import DatasetError
from training.evaluate import HELD_OUT, load_split, score
from training.model_card import put_section, this_machine
from training.text import normalize
from worker.beam_search import BeamSearch
from worker.recognizer import Recognizer

LM_FILE = "lm.arpa.gz"
ORDER = 6  # the longest n-gram flashlight-text's KenLM reads
WEIGHTS = (1.0, 1.4, 1.8)
WORD_SCORES = (2.0, 3.0, 4.0)
CARD_START, CARD_END = "<!-- language-model:start -->", "<!-- language-model:end -->"


def build_char_lm(texts: list[str], out: Path, order: int = ORDER, delimiter: str = "|") -> Path:
    """Characters as words, the word delimiter for spaces. arpabo writes a line before \\data\\ and
    separates fields with spaces; KenLM wants the ARPA header first and tab-separated fields."""
    from arpabo import ArpaBoLM

    sentences = sorted({" ".join(delimiter if c == " " else c for c in normalize(t)) for t in texts if t.strip()})
    if not sentences:
        raise DatasetError("no training texts to build a language model from")
    lm = ArpaBoLM(max_order=order, smoothing_method="kneser_ney", unicode_norm=False)
    lm.read_corpus(io.StringIO("\n".join(sentences)))
    lm.compute()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.arpa"
        lm.write_file(str(raw))
        # mtime=0: the same texts give the same bytes (and sha256), whenever they are built.
        packed = gzip.GzipFile(out, "wb", mtime=0)
        with raw.open(encoding="utf-8") as source, io.TextIOWrapper(packed, encoding="utf-8") as target:
            current = 0
            started = False
            for line in source:
                started = started or line.startswith("\\data\\")
                if not started:
                    continue
                header = re.match(r"\\(\d+)-grams:", line)
                if header:
                    current = int(header.group(1))
                elif current and line.strip() and not line.startswith("\\"):
                    fields = line.split()
                    line = "\t".join([fields[0], " ".join(fields[1 : current + 1]), *fields[current + 1 :]]) + "\n"
                target.write(line)
    return out


def tune(
    model: Path, corpus: Path, lm_file: Path, variant: str = "int8", max_clips: int = 0, beam_size: int = 32
) -> dict[str, Any]:
    recognizer = Recognizer.load(model, variant=variant, threads=1, language_model=False)
    manifest, vocab = recognizer.manifest, read_vocab(model)
    settings = LanguageModel(
        file=LM_FILE, order=ORDER, weight=WEIGHTS[0], word_score=WORD_SCORES[0], beam_size=beam_size
    )
    beam = BeamSearch(lm_file, settings, vocab, manifest.blank_token, manifest.word_delimiter_token)
    validation = load_split(corpus, "validation", max_clips)
    sweep = []
    for weight in WEIGHTS:
        for word_score in WORD_SCORES:
            beam.settings = settings.model_copy(update={"weight": weight, "word_score": word_score})
            recognizer.decoder.beam = beam
            sweep.append({"weight": weight, "word_score": word_score, **score(recognizer, validation)})
            print(
                f"validation  weight {weight:3.1f}  word score {word_score:3.1f}  WER {sweep[-1]['wer']:.4f}  "
                f"CER {sweep[-1]['cer']:.4f}",
                flush=True,
            )
    best = min(sweep, key=lambda r: (r["wer"], r["cer"]))
    chosen = settings.model_copy(update={"weight": best["weight"], "word_score": best["word_score"]})
    beam.settings = chosen
    held_out = {}
    for split in HELD_OUT:
        clips = load_split(corpus, split, max_clips)
        recognizer.decoder.beam = None
        greedy = score(recognizer, clips)
        recognizer.decoder.beam = beam
        held_out[split] = {"greedy": greedy, "language_model": score(recognizer, clips)}
        print(
            f"{split:18s}  WER {greedy['wer']:.4f} -> {held_out[split]['language_model']['wer']:.4f}  "
            f"CER {greedy['cer']:.4f} -> {held_out[split]['language_model']['cer']:.4f}",
            flush=True,
        )
    return {
        "variant": variant,
        "settings": chosen.model_dump(),
        "validation_sweep": sweep,
        "held_out": held_out,
        "lm_bytes": lm_file.stat().st_size,
        "date": time.strftime("%Y-%m-%d"),
        "machine": this_machine(),
    }


def card_section(result: dict[str, Any]) -> str:
    s = result["settings"]
    rows = [
        f"| {split} | {r['greedy']['wer']:.3f} | {r['greedy']['cer']:.3f} | {r['language_model']['wer']:.3f} "
        f"| {r['language_model']['cer']:.3f} | {r['greedy']['rtf_one_thread']:.4f} "
        f"| {r['language_model']['rtf_one_thread']:.4f} |"
        for split, r in result["held_out"].items()
    ]
    return "\n".join(
        [
            CARD_START,
            "## Language model",
            f"`python -m training.lm` ({result['date']}): a character {s['order']}-gram model (Kneser-Ney) of the "
            f"corpus's training texts only, `{s['file']}` ({result['lm_bytes'] / 1e6:.1f} MB), decoded with a CTC "
            f"beam search of {s['beam_size']} ({s['token_beam_size']} tokens per frame); weight {s['weight']} and "
            f"word score {s['word_score']} chosen on the validation split ({len(result['validation_sweep'])} pairs "
            f"tried). Held-out sentences, {result['variant'].upper()}, one thread on "
            f"{result.get('machine', 'this machine')}, through the service's engine (greedy: the calibrated "
            "decoder above; `STT_LANGUAGE_MODEL=false` serves that):",
            "",
            "| split | WER greedy | CER greedy | WER with LM | CER with LM | RTF greedy | RTF with LM |",
            "|---|---|---|---|---|---|---|",
            *rows,
            CARD_END,
        ]
    )


def write(model: Path, lm_file: Path, result: dict[str, Any]) -> None:
    target = model / LM_FILE
    shutil.copyfile(lm_file, target)
    manifest = read_manifest(model)
    manifest.files[LM_FILE] = file_entry(target)
    manifest.language_model = LanguageModel(**result["settings"])
    manifest.metrics["language_model"] = result
    write_manifest(model, manifest)
    put_section(model / "README.md", CARD_START, CARD_END, card_section(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="A servable model folder.")
    parser.add_argument("--corpus", type=Path, required=True, help="The corpus (train, validation, test splits).")
    parser.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--max-clips", type=int, default=0, help="Use only this many clips a split (0 = all).")
    parser.add_argument("--beam-size", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="Add the model and its settings to the folder.")
    args = parser.parse_args()
    train = args.corpus / "train.jsonl"
    if not train.is_file():
        raise SystemExit(f"lm: {train} is missing: --corpus must be a corpus folder (python -m training.corpus)")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        texts = [json.loads(line)["text"] for line in train.read_text(encoding="utf-8").splitlines()]
        lm_file = build_char_lm(texts, Path(tmp) / LM_FILE)
        print(f"built {lm_file.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s", flush=True)
        try:
            result = tune(args.model, args.corpus, lm_file, args.variant, args.max_clips, args.beam_size)
        except DatasetError as exc:
            raise SystemExit(f"lm: {exc}") from None
        print(json.dumps({"settings": result["settings"], "held_out": result["held_out"]}, indent=1))
        if args.write:
            write(args.model, lm_file, result)


if __name__ == "__main__":
    main()
