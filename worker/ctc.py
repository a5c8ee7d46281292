"""Greedy CTC decoding of frame logits into text and timed words."""

from __future__ import annotations

import numpy as np

from stt_common.transcript import Word


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


class CtcDecoder:
    def __init__(self, vocab: dict[str, int], blank: str, word_delimiter: str) -> None:
        if blank not in vocab:
            raise ValueError(f"the vocabulary has no blank token {blank!r}")
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.blank_id = vocab[blank]
        self.delimiter_id = vocab.get(word_delimiter, -1)
        # Special tokens (<pad>, <s>, </s>, <unk>) never reach the text.
        self.silent_ids = {i for t, i in vocab.items() if t.startswith("<") and t.endswith(">")}
        self.silent_ids.add(self.blank_id)

    def decode(self, logits: np.ndarray, frame_seconds: float) -> tuple[str, list[Word]]:
        """`logits` is [frames, vocab]. A word starts at its first character's frame and ends after
        its last one; its confidence is the mean top probability over those character frames."""
        probs = softmax(logits.astype(np.float32))
        best = probs.argmax(axis=-1).tolist()
        top = probs.max(axis=-1).tolist()
        words: list[Word] = []
        chars: list[str] = []
        char_probs: list[float] = []
        first = last = -1

        def flush() -> None:
            if chars:
                words.append(Word(
                    word="".join(chars),
                    start=round(first * frame_seconds, 3),
                    end=round((last + 1) * frame_seconds, 3),
                    confidence=round(sum(char_probs) / len(char_probs), 4),
                ))
            chars.clear()
            char_probs.clear()

        previous = -1
        for frame, token in enumerate(best):
            repeat, previous = token == previous, token
            if token == self.delimiter_id:
                flush()
            elif token in self.silent_ids:
                continue
            elif repeat:  # the same character held over several frames
                last = frame
                char_probs.append(top[frame])
            else:
                if not chars:
                    first = frame
                last = frame
                chars.append(self.id_to_token[token])
                char_probs.append(top[frame])
        flush()
        return " ".join(w.word for w in words), words
