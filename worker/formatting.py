"""The formatting stage: the recognizer's lower-case words → readable Turkish, every word still timed.

"ahmet bey yarın saat onda istanbula gidecek" → "Ahmet Bey yarın saat 10'da İstanbul'a gidecek."

1. A small tagger (ONNX INT8, trained by training/punctuation.py) gives each spoken word the punctuation
   after it and its case, over windows of words that overlap, keeping each window's middle.
2. Numbers become digits (worker/numbers.py).
3. Capitalised words are written as the proper-noun lexicon writes them, with an apostrophe before an
   inflectional suffix ("istanbula" → "İstanbul'a"); a sentence starts with a capital; the text ends a
   sentence.

A formatted word spans the spoken words it came from: start of the first, end of the last, and the
lowest confidence among them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stt_common.errors import ModelError
from stt_common.model_folder import sha256_file
from stt_common.punctuation import CASES, PUNCTUATION, Lexicon, encode, read_lexicon, split_ending, windows
from stt_common.transcript import SegmentRules, Transcript, Word, segment
from worker import numbers

CONFIG_FILE = "formatter.json"
SENTENCE_ENDS = (".", "?")


def turkish_upper(text: str) -> str:
    return text.replace("i", "İ").replace("ı", "I").upper()


def capitalise(word: str) -> str:
    return turkish_upper(word[:1]) + word[1:]


class Formatter:
    def __init__(self, session: ort.InferenceSession, lexicon: Lexicon, window: int, overlap: int) -> None:
        self.session, self.lexicon, self.window, self.overlap = session, lexicon, window, overlap

    @classmethod
    def load(cls, folder: Path, threads: int = 1) -> Formatter:
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            for name, entry in config["files"].items():
                if sha256_file(folder / name) != entry["sha256"]:
                    raise ModelError(f"{folder}: {name} does not match the sha256 in {CONFIG_FILE}")
            if config["punctuation"] != list(PUNCTUATION) or config["cases"] != list(CASES):
                raise ModelError(f"{folder}: its labels are not this version's")
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = ort.InferenceSession(str(folder / config["model"]), options, providers=["CPUExecutionProvider"])
            with (folder / config["lexicon"]).open(encoding="utf-8") as fh:
                lexicon = read_lexicon(fh)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{folder} is not a formatter folder: {exc}") from exc
        window, overlap = int(config["window_words"]), int(config["overlap_words"])
        if not 0 <= overlap < window:  # windows() would never advance
            raise ModelError(f"{folder}: overlap_words must be at least 0 and less than window_words")
        return cls(session, lexicon, window, overlap)

    def labels(self, words: list[str]) -> tuple[list[int], list[int], list[int]]:
        """(punctuation, case, apostrophe) label indices of each word, window by window."""
        labels: tuple[list[int], list[int], list[int]] = ([0] * len(words), [0] * len(words), [0] * len(words))
        for start, end, keep_from, keep_to in windows(len(words), self.window, self.overlap):
            features = encode(words[start:end], self.lexicon)[np.newaxis]
            for out, logits in zip(labels, self.session.run(None, {"features": features}), strict=True):
                out[keep_from:keep_to] = logits[0].argmax(-1)[keep_from - start : keep_to - start].tolist()
        return labels

    def written(self, word: str, case: int, apostrophe: int) -> str:
        """One word as written. A proper noun is written as the lexicon writes it; before an inflectional
        suffix it takes an apostrophe where the tagger says so or the recognizer wrote one ("İstanbul'a")."""
        head, mark, tail = word.partition("'")
        bare = head + tail
        split = (head, tail) if mark else split_ending(bare, self.lexicon) if apostrophe else None
        stem, ending = split if split else (bare, "")
        if CASES[case] == "lower" and not split:
            return bare
        known = self.lexicon.get(stem)
        if known is not None:
            stem = known.written
        else:
            stem = turkish_upper(stem) if CASES[case] == "upper" else capitalise(stem)
        return f"{stem}'{ending}" if ending else stem

    def format_words(self, words: list[Word]) -> list[Word]:
        if not words:  # silence: the tagger is not run on nothing
            return []
        spoken = [w.word for w in words]
        punctuation, case, apostrophe = self.labels(spoken)
        spans = {span.start: span for span in numbers.spans(spoken)}
        out: list[Word] = []
        index = 0
        while index < len(spoken):
            span = spans.get(index)
            end = span.end if span else index + 1
            text = span.text if span else self.written(spoken[index], case[index], apostrophe[index])
            if not out or out[-1].word.endswith(SENTENCE_ENDS):
                text = capitalise(text)
            mark = PUNCTUATION[punctuation[end - 1]] if end < len(spoken) else _final(punctuation[end - 1])
            source = words[index:end]
            out.append(
                Word(
                    word=text + mark,
                    start=source[0].start,
                    end=source[-1].end,
                    confidence=min(w.confidence for w in source),
                )
            )
            index = end
        return out

    def format(self, transcript: Transcript, rules: SegmentRules | None = None) -> Transcript:
        """The transcript with formatted text, words and segments, its recognizer text kept as `raw_text`."""
        words = self.format_words(transcript.words)
        return Transcript(
            text=" ".join(w.word for w in words),
            raw_text=transcript.text,
            words=words,
            segments=segment(words, rules or SegmentRules()),
            duration_s=transcript.duration_s,
            model=transcript.model,
        )


def _final(label: int) -> str:
    """The end of the text ends a sentence."""
    return PUNCTUATION[label] if PUNCTUATION[label] in SENTENCE_ENDS else "."
