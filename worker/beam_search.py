"""CTC beam search with a character n-gram language model (flashlight-text's lexicon-free decoder, KenLM).

A small acoustic model writes most words nearly right but one letter or one word boundary off, and each
such slip costs a whole word. A character model of the language knows spelling and word shapes without
a fixed word list (Turkish builds words from suffixes: a fifth of held-out words never occur in the
training texts, so a lexicon would forbid them). The search returns one token per frame, so the
decoder's word timing and confidence work on its path as on the greedy one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stt_common.errors import ModelError
from stt_common.model_folder import LanguageModel
from stt_common.text import turkish_lower


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
        self.settings, self.vocab_size = settings, len(tokens)
        self.blank_id, self.delimiter_id = vocab[blank], vocab[word_delimiter]

    def path(self, log_probs: np.ndarray) -> np.ndarray:
        """The best-scoring token of each frame, language model included; `log_probs` is [frames, vocab]."""
        from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions

        s = self.settings
        options = LexiconFreeDecoderOptions(
            beam_size=s.beam_size,
            beam_size_token=min(s.token_beam_size, self.vocab_size),
            beam_threshold=25.0,
            lm_weight=s.weight,
            sil_score=s.word_score,
            log_add=False,
            criterion_type=CriterionType.CTC,
        )
        decoder = LexiconFreeDecoder(options, self.lm, self.delimiter_id, self.blank_id, [])
        emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
        frames = emissions.shape[0]
        if frames == 0:
            return np.zeros(0, dtype=np.int64)
        best = decoder.decode(emissions.ctypes.data, frames, self.vocab_size)[0]
        return np.asarray(best.tokens[1 : frames + 1], dtype=np.int64)  # the search pads each end with one token
