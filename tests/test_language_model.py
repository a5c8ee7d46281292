"""Decoding with a character language model: the beam search, the model folder's language model, the switch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stt_common import audio
from stt_common.errors import ModelError
from stt_common.model_folder import (
    LanguageModel,
    WordLanguageModel,
    add_word_language_model,
    read_manifest,
    write_manifest,
)
from tests.stack import MODELS, SAMPLES
from worker.beam_search import BeamSearch
from worker.ctc import log_softmax
from worker.recognizer import Recognizer

BUNDLED = MODELS / "tr-espeak-small"
VOCAB = {"<pad>": 0, "|": 1, "a": 2, "e": 3, "l": 4, "m": 5}


def arpa(path: Path, grams: dict[str, float]) -> Path:
    """A hand-written character bigram model: log10 probabilities of the given bigrams, flat otherwise."""
    unigrams = ["<s>", "</s>", "|", "a", "e", "l", "m"]
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(grams)}", "", "\\1-grams:"]
    lines += [f"{-99 if u == '<s>' else -1.0}\t{u}\t-0.5" for u in unigrams]
    lines += ["", "\\2-grams:", *[f"{p}\t{g}" for g, p in grams.items()], "", "\\end\\", ""]
    path.write_text("\n".join(lines))
    return path


def emissions(frames: list[dict[str, float]]) -> np.ndarray:
    logits = np.full((len(frames), len(VOCAB)), -8.0, dtype=np.float32)
    for row, probs in zip(logits, frames, strict=True):
        for token, p in probs.items():
            row[VOCAB[token]] = np.log(p)
    return logits


def test_the_language_model_settles_what_the_acoustics_leave_open(tmp_path: Path) -> None:
    # "el" or "al"? The frames say 51:49 for "a"; a model that knows "e l" is likely says "el".
    logits = emissions([{"a": 0.51, "e": 0.49}, {"<pad>": 1.0}, {"l": 1.0}, {"<pad>": 1.0}])
    lm = arpa(tmp_path / "lm.arpa", {"<s> e": -0.1, "<s> a": -2.0, "e l": -0.1, "a l": -2.0})
    settings = LanguageModel(file="lm.arpa", order=2, weight=1.0, word_score=0.0, beam_size=8)
    path = BeamSearch(lm, settings, VOCAB, "<pad>", "|").path(log_softmax(logits))
    assert len(path) == len(logits)  # one token per frame, as the greedy choice gives
    assert [t for t in path.tolist() if t] == [VOCAB["e"], VOCAB["l"]]
    assert logits.argmax(-1).tolist()[0] == VOCAB["a"]  # greedy reads "al"
    quiet = BeamSearch(lm, settings.model_copy(update={"weight": 0.0}), VOCAB, "<pad>", "|").path(log_softmax(logits))
    assert [t for t in quiet.tolist() if t] == [VOCAB["a"], VOCAB["l"]]  # weight 0: the acoustics alone
    narrow = BeamSearch(lm, settings.model_copy(update={"token_beam_size": 1}), VOCAB, "<pad>", "|")
    assert [t for t in narrow.path(log_softmax(logits)).tolist() if t] == [VOCAB["a"], VOCAB["l"]]  # "e" never tried


def test_a_file_kenlm_cannot_read_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "lm.arpa").write_text("not a language model\n")
    settings = LanguageModel(file="lm.arpa", order=2, weight=1.0, word_score=0.0)
    with pytest.raises(ModelError, match="not a language model KenLM reads"):
        BeamSearch(tmp_path / "lm.arpa", settings, VOCAB, "<pad>", "|")


def sample_clips() -> list[tuple[str, np.ndarray]]:
    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    return [(ref["text"], audio.decode(SAMPLES / name, 16000, 60)) for name, ref in sorted(references.items())]


def test_the_bundled_model_decodes_with_its_language_model_unless_told_not_to() -> None:
    from training.evaluate import error_rates

    manifest = read_manifest(BUNDLED)
    assert manifest.language_model is not None
    assert manifest.language_model.file in manifest.files
    with_lm = Recognizer.load(BUNDLED, threads=2)
    greedy = Recognizer.load(BUNDLED, threads=2, language_model=False)
    assert with_lm.decoder.beam is not None
    assert greedy.decoder.beam is None
    clips = sample_clips()
    by_lm = [with_lm.transcribe(samples) for _, samples in clips]
    by_greedy = [greedy.transcribe(samples) for _, samples in clips]
    references = [text for text, _ in clips]
    lm_rates = error_rates(references, [t.text for t in by_lm])
    greedy_rates = error_rates(references, [t.text for t in by_greedy])
    assert lm_rates["wer"] <= greedy_rates["wer"]
    assert lm_rates["cer"] <= greedy_rates["cer"]
    for transcript in by_lm:  # words, times and confidences come from the beam's path as from greedy's
        assert transcript.text == " ".join(w.word for w in transcript.words)
        starts = [w.start for w in transcript.words]
        assert starts == sorted(starts)
        assert all(0 < w.confidence <= 1 and w.end > w.start for w in transcript.words)


def test_a_tampered_or_unlisted_language_model_is_refused(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(BUNDLED, tmp_path / "m"))
    lm_file = folder / read_manifest(folder).language_model.file  # type: ignore[union-attr]
    lm_file.write_bytes(lm_file.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match the sha256"):
        Recognizer.load(folder)
    Recognizer.load(folder, language_model=False)  # greedy decoding does not read it
    manifest = read_manifest(folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["language_model"]["token_beam_size"] = 0  # a search that tries no token would read nothing
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="token_beam_size"):
        read_manifest(folder)
    del manifest.files[lm_file.name]
    write_manifest(folder, manifest)
    with pytest.raises(ModelError, match="not listed in files"):
        read_manifest(folder)


def test_an_upper_case_vocabulary_reads_a_lower_case_language_model() -> None:
    """A model whose vocabulary is upper case meets a language model of lower-case text: the search
    reads its tokens in Turkish lower case (İ → i, I → ı) and finds the same path as the lower-case
    vocabulary does."""
    from stt_common.text import turkish_lower

    manifest = read_manifest(BUNDLED)
    vocab = json.loads((BUNDLED / "vocab.json").read_text())
    upper = {(t if t.startswith("<") else t.replace("i", "İ").replace("ı", "I").upper()): i for t, i in vocab.items()}
    assert {turkish_lower(t) for t in upper} == set(vocab)
    recognizer = Recognizer.load(BUNDLED, language_model=False)
    log_probs = log_softmax(recognizer.logits(audio.decode(SAMPLES / "clip01.wav", 16000, 60)))
    settings = manifest.language_model
    assert settings is not None
    lm = BUNDLED / settings.file
    expected = BeamSearch(lm, settings, vocab, "<pad>", "|").path(log_probs)
    assert (BeamSearch(lm, settings, upper, "<pad>", "|", lowercase=True).path(log_probs) == expected).all()
    unread = BeamSearch(lm, settings, upper, "<pad>", "|").path(log_probs)  # the LM knows no upper-case letter
    assert not (unread == expected).all()


def write_domain_text(path: Path, leave_out: str = "") -> Path:
    """A few hundred sentences: the samples' own sentences (but any holding `leave_out`) and random
    sentences over their words and some common ones."""
    import random

    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    sentences = [r["text"] for r in references.values() if not leave_out or leave_out not in r["text"]]
    common = ["ve", "ile", "için", "çok", "ama", "şu", "ev", "okul", "kitap", "güzel"]
    words = [*sorted({w for s in sentences for w in s.split()}), *common]
    rng = random.Random(0)
    sentences += [" ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) for _ in range(300)]
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def test_a_word_language_model_built_from_a_text_file_is_served_and_reads_its_words(tmp_path: Path) -> None:
    """`python -m training.lm --kind word --text FILE --write` gives the bundled model a word 3-gram of
    the domain's text: the words the acoustic model misspells come out as the text spells them."""
    from tests.test_training import run_cli
    from training.lm import main

    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    model = Path(shutil.copytree(BUNDLED, tmp_path / "model"))
    text = write_domain_text(tmp_path / "domain.txt")
    run_cli(main, ["lm", "--model", str(model), "--kind", "word", "--text", str(text), "--write"])
    manifest = read_manifest(model)
    assert manifest.word_language_model is not None
    assert (manifest.word_language_model.alpha, manifest.word_language_model.beta) == (0.5, 1.5)
    assert set(manifest.files) >= {
        "language_model/words.arpa",
        "language_model/unigrams.txt",
        "language_model/attrs.json",
    }
    greedy = Recognizer.load(model, language_model=False)
    words = Recognizer.load(model)
    clips = {name: audio.decode(SAMPLES / name, 16000, 60) for name in references}
    misread = [n for n, samples in clips.items() if greedy.transcribe(samples).text != references[n]["text"]]
    assert len(misread) >= 2, "the greedy transcripts should have errors for the language model to mend"
    assert {n: words.transcribe(samples).text for n, samples in clips.items()} == {
        n: r["text"] for n, r in references.items()
    }


def test_a_word_the_language_model_never_saw_can_still_be_written(tmp_path: Path) -> None:
    """The search is not bound to the unigram list (Turkish makes new words with suffixes): a word
    outside it costs the unknown-word offset, but a clear one is still written."""
    from training.lm import build_word_lm

    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    model = Path(shutil.copytree(BUNDLED, tmp_path / "model"))
    text = write_domain_text(tmp_path / "domain.txt", leave_out="puanların")
    build_word_lm(text.read_text(encoding="utf-8").splitlines(), tmp_path / "lm" / "language_model")
    manifest = read_manifest(model)
    add_word_language_model(model, manifest, tmp_path / "lm" / "language_model")
    write_manifest(model, manifest)
    assert "puanların" not in (model / "language_model" / "unigrams.txt").read_text(encoding="utf-8").split()
    read = Recognizer.load(model).transcribe(audio.decode(SAMPLES / "clip03.ogg", 16000, 60)).text
    assert read == references["clip03.ogg"]["text"]  # "bu puanların düşmesi anlamına geliyor"


def test_the_word_scorer_skips_tokens_the_decoder_never_writes(tmp_path: Path) -> None:
    """A special token between two letters (e, <unk>, v) is not part of the word: "ev" is scored as
    the known word it is, not as "e<unk>v"."""
    from training.lm import build_word_lm
    from worker.word_lm import WordScorer, WordSearch

    folder = build_word_lm(["ev okul", "okul ev"] * 10, tmp_path / "language_model")
    settings = WordLanguageModel(file="language_model/words.arpa", unigrams="language_model/unigrams.txt")
    vocab = {"<pad>": 0, "|": 1, "e": 2, "v": 3, "<unk>": 4, "o": 5}
    search = WordSearch(folder.parent, settings, vocab, "<pad>", "|")
    scorer = WordScorer(search)

    def spell(tokens: list[int]) -> float:
        state, total = scorer.start(False), 0.0
        for token in tokens:
            state, score = scorer.score(state, token)
            total += score
        return total

    assert spell([2, 4, 3, 1]) == pytest.approx(spell([2, 3, 1]))  # e <unk> v | == e v |
    assert spell([2, 3, 1]) > spell([2, 5, 1]) + 5  # "ev" is a word; "eo" is not even a prefix of one
