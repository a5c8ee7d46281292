"""CTC beam search with a character n-gram language model (flashlight-text's lexicon-free decoder, KenLM).

A small acoustic model writes most words nearly right but one letter or one word boundary off, and each
such slip costs a whole word. A character model of the language knows spelling and word shapes without
a fixed word list (Turkish builds words from suffixes: a fifth of held-out words never occur in the
training texts, so a lexicon would forbid them). The search returns one token per frame, so the
decoder's word timing and confidence work on its path as on the greedy one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stt_common.errors import ModelError
from stt_common.model_folder import LanguageModel
from stt_common.text import turkish_lower


class TokenSearch(Protocol):
    """A search over each frame's tokens with a language model (this one, or worker/word_lm.py's)."""

    def path(self, log_probs: np.ndarray) -> np.ndarray: ...


class BeamSearch:
    def __init__(
        self,
        lm_file: Path,
        settings: LanguageModel,
        vocab: dict[str, int],
        blank: str,
        word_delimiter: str,
        *,
        lowercase: bool = False,
    ) -> None:
        """`lowercase`: the language model reads the tokens in Turkish lower case (an upper-case
        vocabulary meets a model of lower-case text), except where two tokens would become one."""
        try:
            from flashlight.lib.text.decoder.kenlm import KenLM
            from flashlight.lib.text.dictionary import Dictionary
        except ImportError as exc:
            raise ModelError(
                "this model decodes with a language model, which needs flashlight-text (pip install -e '.[worker]')"
            ) from exc
        if word_delimiter not in vocab:
            raise ModelError(f"a language model needs the word delimiter {word_delimiter!r} in the vocabulary")
        tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise ModelError("the vocabulary's ids must run 0..n-1 for the beam search")
        dictionary = Dictionary()
        for token in tokens:
            lowered = turkish_lower(token) if lowercase else token
            dictionary.add_entry(lowered if lowered == token or lowered not in vocab else token)
        try:
            self.lm = KenLM(str(lm_file), dictionary)
        except RuntimeError as exc:  # KenLM's format errors
            raise ModelError(f"{lm_file} is not a language model KenLM reads: {exc}") from exc
        self.settings = settings
        self.ids = vocab[blank], vocab[word_delimiter]

    def path(self, log_probs: np.ndarray) -> np.ndarray:
        """The best-scoring token of each frame, language model included; `log_probs` is [frames, vocab]."""
        s = self.settings
        return search_path(log_probs, self.lm, s.beam_size, s.token_beam_size, s.weight, s.word_score, self.ids)


def search_path(
    log_probs: np.ndarray,
    lm: Any,
    beam_size: int,
    token_beam_size: int,
    lm_weight: float,
    delimiter_score: float,
    ids: tuple[int, int],
) -> np.ndarray:
    """flashlight-text's lexicon-free CTC beam search over `log_probs` ([frames, vocab]) with `lm`: one
    token per frame. `ids` are the blank's and the word delimiter's."""
    from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions

    frames, vocab_size = log_probs.shape
    if frames == 0:
        return np.zeros(0, dtype=np.int64)
    options = LexiconFreeDecoderOptions(
        beam_size=beam_size,
        beam_size_token=min(token_beam_size, vocab_size),
        beam_threshold=25.0,
        lm_weight=lm_weight,
        sil_score=delimiter_score,
        log_add=False,
        criterion_type=CriterionType.CTC,
    )
    blank_id, delimiter_id = ids
    decoder = LexiconFreeDecoder(options, lm, delimiter_id, blank_id, [])
    emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
    best = decoder.decode(emissions.ctypes.data, frames, vocab_size)[0]
    return np.asarray(best.tokens[1 : frames + 1], dtype=np.int64)  # the search pads each end with one token
