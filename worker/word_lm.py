"""A word n-gram language model in the CTC beam search, as public fine-tunes ship one: the
`language_model/` folder of transformers' Wav2Vec2ProcessorWithLM (a KenLM file, `unigrams.txt`, and
`attrs.json` with alpha, beta and the unknown-word offset, the scores pyctcdecode gives them).

A lexicon decoder would only ever write words of the unigram list, and Turkish builds new words from
suffixes. So the search stays lexicon-free over the model's characters, and this scorer, handed to
flashlight-text as its language model, scores each word when it ends (KenLM's log probability times
alpha, plus beta, plus the offset when the word is unknown) and the word in progress by whether any
known word starts with it (the offset when none does, growing past six letters). Each increment is
the change in that total, so a hypothesis's score is always its words' scores so far.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from stt_common.errors import ModelError
from stt_common.model_folder import WordLanguageModel
from stt_common.text import turkish_lower
from worker.beam_search import search_path
from worker.ctc import silent_ids

LN_10 = math.log(10)  # KenLM scores in log10
LONG_WORD = 6  # letters past which an unknown word in progress costs more, per letter


def read_unigrams(path: Path) -> list[str]:
    return sorted({line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()})


class WordSearch:
    """The beam search with a word language model: `path` returns one token per frame, as
    worker/beam_search.py's does, so the decoder's word timing works on it unchanged."""

    def __init__(
        self,
        folder: Path,
        settings: WordLanguageModel,
        vocab: dict[str, int],
        blank: str,
        word_delimiter: str,
        *,
        lowercase: bool = False,
        silent: Iterable[str] = (),
    ) -> None:
        """`silent` tokens (and any written <like_this>) are never part of a word, as in worker/ctc.py."""
        try:
            from flashlight.lib.text.decoder.kenlm import KenLM
            from flashlight.lib.text.dictionary import Dictionary
        except ImportError as exc:
            raise ModelError("a word language model needs flashlight-text (pip install -e '.[worker]')") from exc
        if word_delimiter not in vocab:
            raise ModelError(f"a word language model needs the word delimiter {word_delimiter!r} in the vocabulary")
        self.settings = settings
        self.unigrams = read_unigrams(folder / settings.unigrams)
        words = Dictionary()
        for word in self.unigrams:
            words.add_entry(word)
        self.unknown = words.index_size()
        words.add_entry("<unk>")
        self.word_index = {word: i for i, word in enumerate(self.unigrams)}
        try:
            self.kenlm = KenLM(str(folder / settings.file), words)
        except RuntimeError as exc:
            raise ModelError(f"{folder / settings.file} is not a language model KenLM reads: {exc}") from exc
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        self.letters = [turkish_lower(t) if lowercase else t for t, _ in by_id]
        self.ids = vocab[blank], vocab[word_delimiter]
        self.delimiter_id = vocab[word_delimiter]
        self.silent_ids = silent_ids(vocab, silent)

    def path(self, log_probs: np.ndarray) -> np.ndarray:
        """The best-scoring token of each frame, language model included; `log_probs` is [frames, vocab].
        The scorer weighs its own scores (alpha, beta, offsets); its states live as long as this search."""
        s = self.settings
        return search_path(log_probs, WordScorer(self), s.beam_size, s.token_beam_size, 1.0, 0.0, self.ids)

    def known_prefix(self, partial: str) -> bool:
        at = bisect.bisect_left(self.unigrams, partial)
        return at < len(self.unigrams) and self.unigrams[at].startswith(partial)

    def partial_score(self, partial: str) -> float:
        if not partial or self.known_prefix(partial):
            return 0.0
        offset = self.settings.unk_score_offset
        return offset * len(partial) / LONG_WORD if len(partial) > LONG_WORD else offset


def _lm_base() -> Any:
    from flashlight.lib.text.decoder import LM

    return LM


class WordScorer(_lm_base()):  # type: ignore[misc]
    """flashlight-text's language-model interface over characters, scoring words (see the module's
    docstring). A state is the n-gram context of the finished words and the word in progress."""

    def __init__(self, search: WordSearch) -> None:
        super().__init__()
        self.search = search
        self.info: dict[Any, tuple[Any, str, float]] = {}  # state → (KenLM context, word so far, its score)

    def start(self, start_with_nothing: bool) -> Any:  # noqa: ARG002 (a sentence starts each window)
        from flashlight.lib.text.decoder import LMState

        state = LMState()  # our own tree of states, apart from KenLM's (whose children are word indices)
        self.info[state] = (self.search.kenlm.start(not self.search.settings.score_boundary), "", 0.0)
        return state

    def score(self, state: Any, token: int) -> tuple[Any, float]:
        context, partial, partial_score = self.info[state]
        child = state.child(token)
        search = self.search
        if token in search.silent_ids:  # <unk>, <s>: the decoder writes nothing for them
            self.info.setdefault(child, (context, partial, partial_score))
            return child, 0.0
        if token == search.delimiter_id:
            if not partial:
                self.info.setdefault(child, (context, "", 0.0))
                return child, 0.0
            after, word_score = self._word(context, partial)
            self.info.setdefault(child, (after, "", 0.0))
            return child, word_score - partial_score
        longer = partial + search.letters[token]
        longer_score = search.partial_score(longer)
        self.info.setdefault(child, (context, longer, longer_score))
        return child, longer_score - partial_score

    def finish(self, state: Any) -> tuple[Any, float]:
        context, partial, partial_score = self.info[state]
        child = state.child(-1)
        total = -partial_score
        if partial:
            context, word_score = self._word(context, partial)
            total += word_score
        if self.search.settings.score_boundary:
            _, end = self.search.kenlm.finish(context)
            total += self.search.settings.alpha * end * LN_10
        self.info.setdefault(child, (context, "", 0.0))
        return child, total

    def _word(self, context: Any, word: str) -> tuple[Any, float]:
        s = self.search.settings
        index = self.search.word_index.get(word, self.search.unknown)
        after, log10 = self.search.kenlm.score(context, index)
        unknown = s.unk_score_offset if index == self.search.unknown else 0.0
        return after, s.alpha * log10 * LN_10 + s.beta + unknown
