"""CTC decoding of frame logits into text and timed words, over frames that may arrive in pieces (one
window's frames at a time), so a word that straddles two windows is decoded once. Each frame's token is
chosen greedily, or by a beam search with a language model (worker/beam_search.py) over each piece."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from stt_common.text import turkish_lower
from stt_common.transcript import Word

if TYPE_CHECKING:
    from worker.beam_search import TokenSearch


def silent_ids(vocab: dict[str, int], silent: Iterable[str] = ()) -> set[int]:
    """Ids of the tokens a transcript never shows: those listed, and any written <like_this>."""
    listed = set(silent)
    return {i for t, i in vocab.items() if t in listed or (t.startswith("<") and t.endswith(">"))}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # type: ignore[no-any-return]


class CtcDecoder:
    """`delimiter_bonus` is added to the word delimiter's logit when choosing each frame's token (not to
    the probabilities reported as confidence): a calibration for models that under-predict spaces.
    `silent` tokens (and any written <like_this>) never reach the text; with `lowercase` every token is
    written in Turkish lower case, so an upper-case vocabulary's İSTANBUL reads istanbul and IŞIK ışık."""

    def __init__(
        self,
        vocab: dict[str, int],
        blank: str,
        word_delimiter: str,
        delimiter_bonus: float = 0.0,
        beam: TokenSearch | None = None,
        *,
        silent: Iterable[str] = (),
        lowercase: bool = False,
    ) -> None:
        if blank not in vocab:
            raise ValueError(f"the vocabulary has no blank token {blank!r}")
        self.id_to_token = {i: turkish_lower(t) if lowercase else t for t, i in vocab.items()}
        self.blank_id = vocab[blank]
        self.delimiter_id = vocab.get(word_delimiter, -1)
        self.delimiter_bonus = delimiter_bonus if self.delimiter_id >= 0 else 0.0
        self.silent_ids = silent_ids(vocab, silent) | {self.blank_id}
        self.beam = beam

    def choose(self, log_probs: np.ndarray) -> np.ndarray:
        """Each frame's token: the beam search's path when there is a language model, else the most
        likely token (the delimiter bonus added to its log probability, which ranks as its logit does)."""
        if self.beam is not None:
            return self.beam.path(log_probs)
        if self.delimiter_bonus:
            biased = log_probs.copy()
            biased[:, self.delimiter_id] += self.delimiter_bonus
            return biased.argmax(axis=-1)  # type: ignore[no-any-return]
        return log_probs.argmax(axis=-1)  # type: ignore[no-any-return]

    def stream(self, frame_seconds: float) -> CtcStream:
        return CtcStream(self, frame_seconds)

    def decode(self, logits: np.ndarray, frame_seconds: float) -> tuple[str, list[Word]]:
        """`logits` is [frames, vocab] for the whole audio."""
        stream = self.stream(frame_seconds)
        stream.feed(logits, first_frame=0)
        return stream.finish()


WORD_GAP_SECONDS = 0.3


class CtcStream:
    """A word starts at its first character's frame and ends after its last one; its confidence is
    the mean top probability over those character frames. A word also ends at a silence of
    `WORD_GAP_SECONDS` even when the model wrote no word delimiter there, so no word spans a pause."""

    def __init__(self, decoder: CtcDecoder, frame_seconds: float) -> None:
        self.decoder = decoder
        self.frame_seconds = frame_seconds
        self.gap_frames = max(1, round(WORD_GAP_SECONDS / frame_seconds))
        self.next_frame = 0
        self.words: list[Word] = []
        self._chars: list[str] = []
        self._char_probs: list[float] = []
        self._first = self._last = -1
        self._previous = -1

    def feed(self, logits: np.ndarray, first_frame: int, *, after_pause: bool = False) -> None:
        """Consume frames; `first_frame` is the global index of logits[0]. Frames continue the previous
        ones exactly, unless `after_pause`: then the last word ends and a gap may precede them."""
        if after_pause and first_frame >= self.next_frame:
            self._flush()
            self._previous = -1
        elif first_frame != self.next_frame:
            raise ValueError(f"frames must be contiguous: expected frame {self.next_frame}, got {first_frame}")
        d = self.decoder
        logits = logits.astype(np.float32)
        log_probs = log_softmax(logits)
        chosen = d.choose(log_probs)
        best = chosen.tolist()
        top = np.exp(log_probs[np.arange(len(best)), chosen]).tolist()
        for offset, token in enumerate(best):
            frame = first_frame + offset
            repeat, self._previous = token == self._previous, token
            if token == d.delimiter_id:
                self._flush()
            elif token in d.silent_ids:
                continue
            elif repeat:  # the same character held over several frames
                self._last = frame
                self._char_probs.append(top[offset])
            else:
                if self._chars and frame - self._last > self.gap_frames:
                    self._flush()
                if not self._chars:
                    self._first = frame
                self._last = frame
                self._chars.append(d.id_to_token[token])
                self._char_probs.append(top[offset])
        self.next_frame = first_frame + len(best)

    def finish(self) -> tuple[str, list[Word]]:
        self._flush()
        return " ".join(w.word for w in self.words), self.words

    def _flush(self) -> None:
        if self._chars:
            self.words.append(
                Word(
                    word="".join(self._chars),
                    start=round(self._first * self.frame_seconds, 3),
                    end=round((self._last + 1) * self.frame_seconds, 3),
                    confidence=round(sum(self._char_probs) / len(self._char_probs), 4),
                )
            )
        self._chars.clear()
        self._char_probs.clear()
