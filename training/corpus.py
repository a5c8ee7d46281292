"""A synthetic Turkish speech corpus: real Turkish sentences spoken by espeak-ng.

Sentences come from the Turkish Web Treebank (the `turkish-treebanks` package: web and Wikipedia
text); the training split also gets word sequences sampled from `wordfreq`'s Turkish list, for
lexical variety (the treebank has only about 3,400 speakable sentences). Each is rendered with
varied voices, rates and pitches and light noise, resampled to 16 kHz and written as FLAC with
JSON-lines manifests that `datasets` loads:

    train.jsonl, validation.jsonl, test.jsonl      held-out sentences, voices seen in training
    test_heldout_voice.jsonl                       held-out sentences, a voice never seen in training

Validation and test hold out whole sentences, not just renderings. Deterministic given --seed.

    python -m training.corpus --out build/corpus --max-sentences 12000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from training.speak import EspeakMissing, espeak_binary, speak
from training.text import normalize

SAMPLE_RATE = 16000
SEEN_VOICES = [
    "tr",
    "tr+m1",
    "tr+m2",
    "tr+m3",
    "tr+m4",
    "tr+m5",
    "tr+m6",
    "tr+m7",
    "tr+f1",
    "tr+f2",
    "tr+f3",
    "tr+f5",
    "tr+klatt",
    "tr+klatt2",
    "tr+klatt4",
    "tr+croak",
    "tr+grandpa",
    "tr+linda",
]
HELD_OUT_VOICE = "tr+f4"
_ACRONYM = re.compile(r"\b[A-ZÇĞİÖŞÜ]{2,}\b")
_UNSPEAKABLE = re.compile(r"[0-9%&/@#\\_=+<>\[\]{}|*~^$€£]|\.\w|https?:")


@dataclass(frozen=True)
class CorpusConfig:
    out: Path
    max_sentences: int = 12000
    validation_sentences: int = 200
    test_sentences: int = 500
    renders_per_train_sentence: int = 2
    word_sequences: int = 3000
    min_words: int = 2
    max_words: int = 20
    noise_probability: float = 0.5
    seed: int = 0
    voices: list[str] = field(default_factory=lambda: list(SEEN_VOICES))
    held_out_voice: str = HELD_OUT_VOICE


def treebank_sentences() -> list[str]:
    """Every `# text = …` sentence of the installed Turkish Web Treebank, in file order."""
    try:
        files = [f for f in metadata.files("turkish-treebanks") or [] if str(f).endswith(".conllu")]
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError("install the sentence source: pip install turkish-treebanks") from exc
    sentences = []
    for file in sorted(files, key=str):
        for line in Path(str(file.locate())).read_text(encoding="utf-8").splitlines():
            if line.startswith("# text = "):
                sentences.append(line[len("# text = ") :].strip())
    return sentences


def speakable(sentence: str, min_words: int, max_words: int) -> str | None:
    """The normalised target text, or None when espeak-ng would not read it as written (digits,
    acronyms, symbols, URLs) or it is too short or long."""
    if _UNSPEAKABLE.search(sentence) or _ACRONYM.search(sentence):
        return None
    text = normalize(sentence)
    return text if min_words <= len(text.split()) <= max_words else None


def select_sentences(config: CorpusConfig) -> list[tuple[str, str]]:
    """(spoken form, target text) pairs, de-duplicated on the target, shuffled deterministically."""
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for sentence in treebank_sentences():
        text = speakable(sentence, config.min_words, config.max_words)
        if text and text not in seen:
            seen.add(text)
            pairs.append((sentence, text))
    random.Random(config.seed).shuffle(pairs)
    return pairs[: config.max_sentences]


@dataclass(frozen=True)
class Rendering:
    split: str
    sentence_id: int
    spoken: str
    text: str
    voice: str
    rate: int
    pitch: int
    noise_snr_db: float | None
    path: str


def render(job: tuple[Rendering, Path, int]) -> dict[str, Any]:
    item, root, seed = job
    rng = np.random.default_rng(seed)
    samples, rate = speak(item.spoken, voice=item.voice, rate=item.rate, pitch=item.pitch)
    samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    if item.noise_snr_db is not None:
        power = float(np.mean(samples**2)) or 1e-8
        noise = rng.standard_normal(len(samples)).astype(np.float32)
        samples = samples + noise * np.sqrt(power / 10 ** (item.noise_snr_db / 10))
    samples = samples / max(1e-6, float(np.abs(samples).max())) * rng.uniform(0.3, 0.9)
    target = root / item.path
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, samples, SAMPLE_RATE, subtype="PCM_16")
    record = asdict(item)
    record["audio"] = record.pop("path")
    record["duration"] = round(len(samples) / SAMPLE_RATE, 3)
    return record


def word_sequences(config: CorpusConfig, exclude: set[str]) -> list[tuple[str, str]]:
    """Random 3–9 word sequences from the 30,000 most frequent Turkish words (training only)."""
    if config.word_sequences <= 0:
        return []
    from wordfreq import top_n_list

    words = [w for w in top_n_list("tr", 30000) if normalize(w) == w and "'" not in w]
    rng = random.Random(config.seed + 2)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < config.word_sequences:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        if text not in exclude:
            pairs.append((text, text))
    return pairs


def plan(config: CorpusConfig, pairs: list[tuple[str, str]]) -> list[Rendering]:
    rng = random.Random(config.seed + 1)
    n_val, n_test = config.validation_sentences, config.test_sentences
    held_out = {text for _, text in pairs[: n_val + n_test]}
    train = pairs[n_val + n_test :] + word_sequences(config, held_out)
    splits = {
        "validation": (pairs[:n_val], config.voices, 1),
        "test": (pairs[n_val : n_val + n_test], config.voices, 1),
        "test_heldout_voice": (pairs[n_val : n_val + n_test], [config.held_out_voice], 1),
        "train": (train, config.voices, config.renders_per_train_sentence),
    }
    items = []
    for split, (chosen, voices, renders) in splits.items():
        offset = 0 if split == "train" else (n_val if split != "validation" else 0)
        for index, (spoken, text) in enumerate(chosen):
            sentence_id = index + (n_val + n_test if split == "train" else offset)
            for take in range(renders):
                noisy = rng.random() < config.noise_probability
                items.append(
                    Rendering(
                        split=split,
                        sentence_id=sentence_id,
                        spoken=spoken,
                        text=text,
                        voice=rng.choice(voices),
                        rate=rng.randint(125, 195),
                        pitch=rng.randint(25, 75),
                        noise_snr_db=round(rng.uniform(15, 35), 1) if noisy else None,
                        path=f"audio/{split}/{sentence_id:06d}_{take}.flac",
                    )
                )
    return items


def build(config: CorpusConfig, processes: int | None = None) -> dict[str, int]:
    config.out.mkdir(parents=True, exist_ok=True)
    items = plan(config, select_sentences(config))
    jobs = [(item, config.out, config.seed * 1_000_003 + i) for i, item in enumerate(items)]
    with multiprocessing.Pool(processes) as pool:
        records = pool.map(render, jobs, chunksize=32)
    counts: dict[str, int] = {}
    for split in ("train", "validation", "test", "test_heldout_voice"):
        rows = [r for r in records if r["split"] == split]
        counts[split] = len(rows)
        with (config.out / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    hours = sum(float(r["duration"]) for r in records if r["split"] == "train") / 3600
    summary = {
        "config": {**asdict(config), "out": str(config.out)},
        "renderings": counts,
        "train_hours": round(hours, 2),
    }
    (config.out / "corpus.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-sentences", type=int, default=CorpusConfig.max_sentences)
    parser.add_argument("--validation-sentences", type=int, default=CorpusConfig.validation_sentences)
    parser.add_argument("--test-sentences", type=int, default=CorpusConfig.test_sentences)
    parser.add_argument("--renders-per-train-sentence", type=int, default=CorpusConfig.renders_per_train_sentence)
    parser.add_argument("--word-sequences", type=int, default=CorpusConfig.word_sequences)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        espeak_binary()  # before the worker pool, so a missing binary is one line, not a pool traceback
    except EspeakMissing as exc:
        parser.exit(2, f"error: {exc}\n")
    config = CorpusConfig(
        out=args.out,
        max_sentences=args.max_sentences,
        validation_sentences=args.validation_sentences,
        test_sentences=args.test_sentences,
        renders_per_train_sentence=args.renders_per_train_sentence,
        word_sequences=args.word_sequences,
        seed=args.seed,
    )
    print(build(config))
    print((args.out / "corpus.json").read_text())


if __name__ == "__main__":
    main()
