"""Give a model folder a language model: build it from the corpus's training texts (or your own text
file), tune the beam search's weights on the validation split, score the held-out splits greedy and with it.

    python -m training.lm --model models/tr-espeak-small --corpus build/corpus [--write]
    python -m training.lm --model models/NAME --kind word --text my-domain.txt [--corpus build/corpus] --write

A word model (`--kind word`) is a Kneser-Ney word 3-gram with its unigram list, in the `language_model/`
layout of transformers' Wav2Vec2ProcessorWithLM; without --corpus it keeps pyctcdecode's default weights
(alpha 0.5, beta 1.5). It wins over the character model when a folder has both.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stt_common.model_folder import (
    WORD_LM_DIR,
    LanguageModel,
    WordLanguageModel,
    add_word_language_model,
    file_entry,
    read_manifest,
    read_vocab,
    write_manifest,
)
from training.data import DatasetError
from training.evaluate import HELD_OUT, load_split, score
from training.model_card import put_section, this_machine
from training.text import normalize
from worker.beam_search import BeamSearch, TokenSearch
from worker.recognizer import Recognizer
from worker.word_lm import WordSearch

LM_FILE = "lm.arpa.gz"
ORDER = 6  # the longest n-gram flashlight-text's KenLM reads
WORD_ORDER = 3  # a few thousand sentences of domain text support trigrams at most
WEIGHTS = (1.0, 1.4, 1.8)
WORD_SCORES = (2.0, 3.0, 4.0)
CARD_START, CARD_END = "<!-- language-model:start -->", "<!-- language-model:end -->"
CARDS = {
    "char": (CARD_START, CARD_END),
    "word": ("<!-- word-language-model:start -->", "<!-- word-language-model:end -->"),
}
ALPHAS = (0.3, 0.5, 0.8)  # the word model's weight (pyctcdecode's default 0.5) ...
BETAS = (0.5, 1.5, 3.0)  # ... and its bonus per word (default 1.5)


def build_char_lm(texts: list[str], out: Path, order: int = ORDER, delimiter: str = "|") -> Path:
    """Characters as words, the word delimiter for spaces."""
    sentences = sorted({" ".join(delimiter if c == " " else c for c in normalize(t)) for t in texts if t.strip()})
    return write_arpa(sentences, order, out)


def build_word_lm(texts: list[str], folder: Path, order: int = WORD_ORDER) -> Path:
    """A word n-gram of the normalised texts in transformers' Wav2Vec2ProcessorWithLM layout (`words.arpa`,
    `unigrams.txt`, `attrs.json` with pyctcdecode's default weights), which the export carries and
    `--write` adds to a model folder."""
    sentences = sorted({normalize(t) for t in texts if normalize(t)})
    folder.mkdir(parents=True, exist_ok=True)
    write_arpa(sentences, order, folder / "words.arpa", unknown=True)
    unigrams = sorted({word for sentence in sentences for word in sentence.split()})
    (folder / "unigrams.txt").write_text("\n".join(unigrams) + "\n", encoding="utf-8")
    attrs = {"alpha": 0.5, "beta": 1.5, "unk_score_offset": -10.0, "score_boundary": True}
    (folder / "attrs.json").write_text(json.dumps(attrs), encoding="utf-8")
    return folder


def write_arpa(sentences: list[str], order: int, out: Path, *, unknown: bool = False) -> Path:
    """A Kneser-Ney n-gram (arpabo) of space-separated `sentences`, as KenLM reads ARPA: arpabo writes a
    line before \\data\\ and separates fields with spaces; KenLM wants the header first and tabs.
    Gzipped when `out` ends in .gz (with mtime 0: the same texts give the same bytes, and sha256).
    `unknown`: add <unk> (arpabo writes none; KenLM would give it 10^-100) as likely as the rarest word."""
    from arpabo import ArpaBoLM

    if not sentences:
        raise DatasetError("no texts to build a language model from")
    lm = ArpaBoLM(max_order=order, smoothing_method="kneser_ney", unicode_norm=False)
    lm.read_corpus(io.StringIO("\n".join(sentences)))
    lm.compute()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.arpa"
        lm.write_file(str(raw))
        binary = gzip.GzipFile(out, "wb", mtime=0) if out.suffix == ".gz" else out.open("wb")
        with raw.open(encoding="utf-8") as source, io.TextIOWrapper(binary, encoding="utf-8") as target:
            current = 0
            started = False
            rarest = 0.0
            for line in source:
                started = started or line.startswith("\\data\\")
                if not started:
                    continue
                header = re.match(r"\\(\d+)-grams:", line)
                if unknown and line.startswith("ngram 1="):
                    line = f"ngram 1={int(line.split('=')[1]) + 1}\n"
                if header:
                    current = int(header.group(1))
                elif current and line.strip() and not line.startswith("\\"):
                    fields = line.split()
                    line = "\t".join([fields[0], " ".join(fields[1 : current + 1]), *fields[current + 1 :]]) + "\n"
                    rarest = min(rarest, float(fields[0])) if current == 1 and fields[1] != "<s>" else rarest
                elif unknown and current == 1:  # the blank line that ends the unigrams
                    target.write(f"{rarest}\t<unk>\t0\n")
                    current = 0
                target.write(line)
    return out


Settings = TypeVar("Settings", LanguageModel, WordLanguageModel)


def tune(
    model: Path,
    corpus: Path,
    grid: list[Settings],
    search_for: Callable[[Settings], TokenSearch],
    tuned: tuple[str, ...],
    variant: str = "int8",
    max_clips: int = 0,
) -> dict[str, Any]:
    """Score each of `grid`'s settings on the validation split, keep the best, and score the held-out
    splits greedy and with it."""
    recognizer = Recognizer.load(model, variant=variant, threads=1, language_model=False)
    validation = load_split(corpus, "validation", max_clips)
    sweep = []
    for settings in grid:
        recognizer.decoder.beam = search_for(settings)
        sweep.append({**{k: getattr(settings, k) for k in tuned}, **score(recognizer, validation)})
        shown = "  ".join(f"{k} {getattr(settings, k):3.1f}" for k in tuned)
        print(f"validation  {shown}  WER {sweep[-1]['wer']:.4f}  CER {sweep[-1]['cer']:.4f}", flush=True)
    chosen = grid[min(range(len(grid)), key=lambda i: (sweep[i]["wer"], sweep[i]["cer"]))]
    beam = search_for(chosen)
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
        "date": time.strftime("%Y-%m-%d"),
        "machine": this_machine(),
    }


def tune_char_lm(
    model: Path, corpus: Path, lm_file: Path, variant: str = "int8", max_clips: int = 0, beam_size: int = 32
) -> dict[str, Any]:
    manifest, vocab = read_manifest(model), read_vocab(model)
    grid = [
        LanguageModel(file=LM_FILE, order=ORDER, weight=w, word_score=ws, beam_size=beam_size)
        for w in WEIGHTS
        for ws in WORD_SCORES
    ]
    search = BeamSearch(lm_file, grid[0], vocab, manifest.blank_token, manifest.word_delimiter_token)

    def search_for(settings: LanguageModel) -> TokenSearch:
        search.settings = settings  # one KenLM load for the whole sweep
        return search

    result = tune(model, corpus, grid, search_for, ("weight", "word_score"), variant, max_clips)
    return {**result, "lm_bytes": lm_file.stat().st_size}


def tune_word_lm(model: Path, corpus: Path, folder: Path, variant: str = "int8", max_clips: int = 0) -> dict[str, Any]:
    """`folder` holds language_model/ as build_word_lm writes it; the sweep is over alpha and beta."""
    manifest, vocab = read_manifest(model), read_vocab(model)
    files = {"file": f"{WORD_LM_DIR}/words.arpa", "unigrams": f"{WORD_LM_DIR}/unigrams.txt"}
    grid = [WordLanguageModel(**files, alpha=a, beta=b) for a in ALPHAS for b in BETAS]

    def search_for(settings: WordLanguageModel) -> TokenSearch:
        blank, delimiter = manifest.blank_token, manifest.word_delimiter_token
        lowercase = manifest.output_case == "lower"
        return WordSearch(
            folder, settings, vocab, blank, delimiter, lowercase=lowercase, silent=manifest.special_tokens
        )

    result = tune(model, corpus, grid, search_for, ("alpha", "beta"), variant, max_clips)
    return {**result, "lm_bytes": (folder / files["file"]).stat().st_size}


def card_section(result: dict[str, Any], kind: str) -> str:
    s = result["settings"]
    rows = [
        f"| {split} | {r['greedy']['wer']:.3f} | {r['greedy']['cer']:.3f} | {r['language_model']['wer']:.3f} "
        f"| {r['language_model']['cer']:.3f} | {r['greedy']['rtf_one_thread']:.4f} "
        f"| {r['language_model']['rtf_one_thread']:.4f} |"
        for split, r in result["held_out"].items()
    ]
    if kind == "word":
        what = (
            f"a word {WORD_ORDER}-gram model (Kneser-Ney), `{s['file']}` ({result['lm_bytes'] / 1e6:.1f} MB) with "
            f"its unigrams, decoded with a CTC beam search of {s['beam_size']} ({s['token_beam_size']} tokens per "
            f"frame) that scores each word as it ends; alpha {s['alpha']} and beta {s['beta']}"
        )
    else:
        what = (
            f"a character {s['order']}-gram model (Kneser-Ney) of the corpus's training texts only, `{s['file']}` "
            f"({result['lm_bytes'] / 1e6:.1f} MB), decoded with a CTC beam search of {s['beam_size']} "
            f"({s['token_beam_size']} tokens per frame); weight {s['weight']} and word score {s['word_score']}"
        )
    start, end = CARDS[kind]
    return "\n".join(
        [
            start,
            "## Word language model" if kind == "word" else "## Language model",
            f"`python -m training.lm` ({result['date']}): {what} chosen on the validation split "
            f"({len(result['validation_sweep'])} pairs tried). Held-out sentences, {result['variant'].upper()}, one "
            f"thread on {result.get('machine', 'this machine')}, through the service's engine (greedy: the "
            "calibrated decoder above; `STT_LANGUAGE_MODEL=false` serves that):",
            "",
            "| split | WER greedy | CER greedy | WER with LM | CER with LM | RTF greedy | RTF with LM |",
            "|---|---|---|---|---|---|---|",
            *rows,
            end,
        ]
    )


def write_char_lm(model: Path, lm_file: Path, result: dict[str, Any]) -> None:
    target = model / LM_FILE
    shutil.copyfile(lm_file, target)
    manifest = read_manifest(model)
    manifest.files[LM_FILE] = file_entry(target)
    manifest.language_model = LanguageModel(**result["settings"])
    manifest.metrics["language_model"] = result
    write_manifest(model, manifest)
    put_section(model / "README.md", *CARDS["char"], card_section(result, "char"))


def write_word_lm(model: Path, folder: Path, result: dict[str, Any] | None) -> None:
    """Add language_model/ to the model folder, with the tuned alpha and beta when there are some."""
    manifest = read_manifest(model)
    if result is not None:
        attrs_file = folder / WORD_LM_DIR / "attrs.json"
        attrs = json.loads(attrs_file.read_text(encoding="utf-8"))
        attrs.update(alpha=result["settings"]["alpha"], beta=result["settings"]["beta"])
        attrs_file.write_text(json.dumps(attrs), encoding="utf-8")
        manifest.metrics["word_language_model"] = result
    add_word_language_model(model, manifest, folder / WORD_LM_DIR)
    write_manifest(model, manifest)
    if result is not None and (model / "README.md").is_file():
        put_section(model / "README.md", *CARDS["word"], card_section(result, "word"))


def read_texts(text_file: Path | None, corpus: Path | None) -> list[str]:
    """The user's text file (one sentence or paragraph a line), else the corpus's training texts."""
    if text_file is not None:
        if not text_file.is_file():
            raise SystemExit(f"lm: {text_file} is not a file")
        return [line for line in text_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = corpus / "train.jsonl" if corpus else None
    if train is None or not train.is_file():
        raise SystemExit(
            f"lm: {train} is missing: give --text FILE or --corpus, a corpus folder (python -m training.corpus)"
        )
    return [json.loads(line)["text"] for line in train.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="A servable model folder.")
    parser.add_argument(
        "--corpus", type=Path, help="The corpus (train, validation, test splits): its texts, and the tuning."
    )
    parser.add_argument("--text", type=Path, help="Build from this text file (your domain's) instead of the corpus.")
    parser.add_argument(
        "--kind",
        choices=("char", "word"),
        default="char",
        help="A character 6-gram (any word, spelled well) or a word 3-gram with its unigrams (your vocabulary).",
    )
    parser.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    parser.add_argument("--max-clips", type=int, default=0, help="Use only this many clips a split (0 = all).")
    parser.add_argument("--beam-size", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="Add the model and its settings to the folder.")
    args = parser.parse_args()
    texts = read_texts(args.text, args.corpus)
    if args.kind == "char" and args.corpus is None:
        raise SystemExit("lm: a character model's weights are tuned on a corpus's validation split: give --corpus")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        try:
            if args.kind == "char":
                lm_file = build_char_lm(texts, Path(tmp) / LM_FILE)
                result: dict[str, Any] | None = tune_char_lm(
                    args.model, args.corpus, lm_file, args.variant, args.max_clips, args.beam_size
                )
            else:
                build_word_lm(texts, Path(tmp) / WORD_LM_DIR)
                print(f"built in {time.perf_counter() - started:.1f} s", flush=True)
                result = (
                    tune_word_lm(args.model, args.corpus, Path(tmp), args.variant, args.max_clips)
                    if args.corpus
                    else None
                )
        except DatasetError as exc:
            raise SystemExit(f"lm: {exc}") from None
        if result is not None:
            print(json.dumps({"settings": result["settings"], "held_out": result["held_out"]}, indent=1))
        if args.write and args.kind == "char":
            write_char_lm(args.model, lm_file, result or {})
        elif args.write:
            write_word_lm(args.model, Path(tmp), result)


if __name__ == "__main__":
    main()
