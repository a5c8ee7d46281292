"""Greedy CTC decoding on hand-made logits: collapsing, blanks, word boundaries and times."""

from __future__ import annotations

import numpy as np
import pytest

from worker.ctc import CtcDecoder

VOCAB = {"<pad>": 0, "|": 1, "a": 2, "l": 3, "m": 4, "<unk>": 5}
FRAME = 0.02


def logits_for(tokens: str) -> np.ndarray:
    """One frame per character of `tokens`: '_' is blank, ' ' the delimiter, '?' <unk>."""
    ids = {"_": 0, " ": 1, "a": 2, "l": 3, "m": 4, "?": 5}
    out = np.full((len(tokens), len(VOCAB)), -10.0, dtype=np.float32)
    for frame, ch in enumerate(tokens):
        out[frame, ids[ch]] = 10.0
    return out


@pytest.fixture
def decoder() -> CtcDecoder:
    return CtcDecoder(VOCAB, blank="<pad>", word_delimiter="|")


def test_repeats_collapse_and_blank_separates_doubled_letters(decoder: CtcDecoder) -> None:
    text, words = decoder.decode(logits_for("aal_l__m"), FRAME)
    assert text == "allm"
    assert [(w.word, w.start, w.end) for w in words] == [("allm", 0.0, 0.16)]


def test_words_split_at_the_delimiter_with_their_own_times(decoder: CtcDecoder) -> None:
    text, words = decoder.decode(logits_for("__al__  __ma_a_ _"), FRAME)
    assert text == "al maa"
    assert [(w.word, w.start, w.end) for w in words] == [("al", 0.04, 0.08), ("maa", 0.2, 0.28)]
    assert all(w.confidence == pytest.approx(1.0, abs=1e-6) for w in words)


def test_special_tokens_and_empty_output(decoder: CtcDecoder) -> None:
    assert decoder.decode(logits_for("____"), FRAME) == ("", [])
    text, words = decoder.decode(logits_for("a?l"), FRAME)
    assert text == "al"
    assert words[0].end == 0.06


def test_confidence_reflects_uncertain_frames(decoder: CtcDecoder) -> None:
    logits = logits_for("ma")
    logits[1, :] = 0.0  # uniform: the 'a' frame is a coin toss among 6 classes
    logits[1, 2] = 0.1
    _, words = decoder.decode(logits, FRAME)
    assert 0.5 < words[0].confidence < 0.7


def test_vocabulary_without_blank_is_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        CtcDecoder({"a": 0}, blank="<pad>", word_delimiter="|")


def test_frames_fed_in_pieces_decode_as_one_sequence(decoder: CtcDecoder) -> None:
    tokens = "al_la m__a_l lam"
    whole = decoder.decode(logits_for(tokens), FRAME)
    for cut in range(1, len(tokens)):  # a seam anywhere, inside a word or a held character
        stream = decoder.stream(FRAME)
        stream.feed(logits_for(tokens[:cut]), first_frame=0)
        stream.feed(logits_for(tokens[cut:]), first_frame=cut)
        assert stream.finish() == whole, cut


def test_pieces_must_be_contiguous_unless_after_a_pause(decoder: CtcDecoder) -> None:
    stream = decoder.stream(FRAME)
    stream.feed(logits_for("al"), first_frame=0)
    with pytest.raises(ValueError, match="contiguous"):
        stream.feed(logits_for("la"), first_frame=3)
    stream.feed(logits_for("la"), first_frame=3, after_pause=True)  # a cut at a pause ends the word
    text, words = stream.finish()
    assert text == "al la"
    assert words[1].start == pytest.approx(3 * FRAME)


def test_a_long_silence_ends_a_word_without_a_delimiter(decoder: CtcDecoder) -> None:
    text, words = decoder.decode(logits_for("al" + "_" * 14 + "la" + "_" * 16 + "m"), FRAME)
    assert text == "alla m"  # 14 blank frames (0.28 s) join; 16 (0.32 s) split
    assert words[1].start == pytest.approx(34 * FRAME)


def test_a_delimiter_bonus_restores_a_space_the_blank_narrowly_won() -> None:
    logits = logits_for("al_ma")
    logits[2, 1] = 9.0  # the delimiter is a close second to the blank between the words
    plain = CtcDecoder(VOCAB, blank="<pad>", word_delimiter="|")
    tuned = CtcDecoder(VOCAB, blank="<pad>", word_delimiter="|", delimiter_bonus=1.5)
    assert plain.decode(logits, FRAME)[0] == "alma"
    text, words = tuned.decode(logits, FRAME)
    assert text == "al ma"
    assert words[0].confidence == pytest.approx(1.0, abs=1e-4)  # confidence stays the model's own
    clear = logits_for("al__ma")  # where the blank wins by far, the bonus changes nothing
    assert tuned.decode(clear, FRAME)[0] == "alma"


def test_an_upper_case_vocabulary_with_its_own_specials_is_written_in_turkish_lower_case() -> None:
    tokens = ["[PAD]", "▁", "[UNK]", "<s>", *"İSTANBULIŞK"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    spoken = ["<s>", "İ", "S", "T", "A", "N", "B", "U", "L", "▁", "I", "Ş", "[UNK]", "I", "K", "[PAD]"]
    logits = np.full((len(spoken), len(vocab)), -10.0, dtype=np.float32)
    for frame, token in enumerate(spoken):
        logits[frame, vocab[token]] = 10.0
    lower = CtcDecoder(vocab, blank="[PAD]", word_delimiter="▁", silent=["[UNK]", "<s>"], lowercase=True)
    assert lower.decode(logits, FRAME)[0] == "istanbul ışık"
    as_written = CtcDecoder(vocab, blank="[PAD]", word_delimiter="▁", silent=["[UNK]", "<s>"])
    assert as_written.decode(logits, FRAME)[0] == "İSTANBUL IŞIK"
