"""The model pipeline in miniature (the CI smoke test): build a tiny synthetic corpus with espeak-ng,
train a tiny config for a few steps, check the loss fell and WER was computed, export with the parity gate."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="training needs the `train` extra")
pytest.importorskip("datasets", reason="training needs the `train` extra")

from export.onnx_export import ExportError, ExportOptions, export_checkpoint
from training.__main__ import main as train_main
from training.checkpoints import build_vocab
from training.corpus import CorpusConfig, build, speakable
from training.data import DatasetError, load_audio, load_split
from training.speak import EspeakMissing, speak
from training.text import normalize
from training.vocab import turkish_vocab


def run_cli(main: Any, argv: list[str]) -> None:
    """Run a module's argparse `main()` as if from the command line."""
    saved = sys.argv
    sys.argv = argv
    try:
        main()
    finally:
        sys.argv = saved


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_turkish_normalisation() -> None:
    assert normalize("IŞIK İSTANBUL'da “yanar”.") == "ışık istanbul'da yanar"
    assert normalize("'Alıntı' dedi ve gitti...") == "alıntı dedi ve gitti"
    assert normalize("3 elma", spell_numbers=True) == "üç elma"
    assert speakable("TBMM toplandı ve karar verdi.", 2, 20) is None  # an acronym espeak would spell
    assert speakable("Saat 5'te geldi.", 2, 20) is None  # digits
    assert speakable("Ankara'ya gittik.", 2, 20) == "ankara'ya gittik"


def test_vocabulary_builder_keeps_the_alphabet_and_adds_new_characters() -> None:
    assert build_vocab(["merhaba dünya"]) == turkish_vocab()
    vocab = build_vocab(["ñandú"])
    assert vocab["<pad>"] == 0
    assert vocab["|"] == 1
    assert "ñ" in vocab
    assert vocab["<unk>"] == len(vocab) - 1


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(EspeakMissing, match="apt-get install espeak-ng"):
        speak("merhaba")


def test_corpus_without_espeak_is_one_line(tmp_path: Path) -> None:
    """The corpus builder checks before starting its worker pool: one line on stderr, exit 2."""
    import subprocess

    env = {**os.environ, "PATH": str(tmp_path)}  # no espeak-ng on this PATH
    done = subprocess.run(
        [sys.executable, "-m", "training.corpus", "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: espeak-ng is not installed; install it with `apt-get install espeak-ng`"
    assert not (tmp_path / "c").exists()


def test_bad_dataset_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"has no train\.jsonl"):
        load_split(str(tmp_path), "train")
    (tmp_path / "train.jsonl").write_text(json.dumps({"audio": "missing.flac", "sentence": "x"}) + "\n")
    rows = load_split(str(tmp_path), "train")
    from training.data import check_columns

    with pytest.raises(DatasetError, match="no column"):
        check_columns(rows, "audio", "text")
    with pytest.raises(DatasetError, match="cannot be read"):
        load_audio("missing.flac", str(tmp_path))
    with pytest.raises(DatasetError, match="empty"):
        load_audio({"path": None, "bytes": None})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("corpus")
    counts = build(
        CorpusConfig(
            out=out,
            max_sentences=24,
            validation_sentences=4,
            test_sentences=4,
            renders_per_train_sentence=1,
            word_sequences=0,
        ),
        processes=2,
    )
    assert counts == {"train": 16, "validation": 4, "test": 4, "test_heldout_voice": 4}
    return out


@needs_espeak
def test_corpus_holds_out_whole_sentences_and_a_voice(corpus: Path) -> None:
    rows = {
        s: [json.loads(line) for line in (corpus / f"{s}.jsonl").read_text().splitlines()]
        for s in ("train", "validation", "test", "test_heldout_voice")
    }
    train_texts = {r["text"] for r in rows["train"]}
    for split in ("validation", "test", "test_heldout_voice"):
        assert not train_texts & {r["text"] for r in rows[split]}
    assert {r["voice"] for r in rows["test_heldout_voice"]} == {"tr+f4"}
    assert "tr+f4" not in {r["voice"] for r in rows["train"]}
    audio = load_audio(rows["train"][0]["audio"], str(corpus))
    assert len(audio) / 16000 == pytest.approx(rows["train"][0]["duration"], abs=0.01)


@needs_espeak
def test_tiny_training_lowers_the_loss_and_exports_through_the_gate(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = train_main(
        [
            "--dataset",
            str(corpus),
            "--preset",
            "tiny",
            "--output_dir",
            str(out),
            "--max_steps",
            "40",
            "--per_device_train_batch_size",
            "8",
            "--learning_rate",
            "3e-3",
            "--warmup_steps",
            "0",
            "--logging_steps",
            "4",
            "--save_strategy",
            "no",
            "--report_to",
            "tensorboard",
            "--use_cpu",
            "--test_splits",
            "test",
            "--seed",
            "0",
            "--num_train_epochs",
            "20",
            "--pad_silence_seconds",
            "0.3",
        ]
    )
    losses = [e["loss"] for e in report["history"] if "loss" in e]
    assert len(losses) >= 6
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 * 0.8  # the loss fell
    evaluation = json.loads((out / "evaluation.json").read_text())
    for split in ("validation", "test"):
        assert evaluation["eval"][split]["cer"] >= 0
        assert evaluation["eval"][split]["n"] == 4
    assert any("eval_wer" in e for e in report["history"])  # evaluated each epoch
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # TensorBoard logs

    manifest = export_checkpoint(
        str(out),
        tmp_path / "model",
        ExportOptions(name="smoke", dev_set=str(corpus), dev_split="validation", max_int8_wer_increase=1.0),
    )
    assert {"wer_fp32", "wer_int8", "cer_int8"} <= set(manifest.metrics)
    with pytest.raises(ExportError, match="INT8 WER"):
        export_checkpoint(
            str(out), tmp_path / "strict", ExportOptions(name="smoke", dev_set=str(corpus), max_int8_wer_increase=-1.0)
        )
    assert not (tmp_path / "strict").exists()


def test_calibration_picks_a_delimiter_bonus_on_validation_and_writes_it(tmp_path: Path) -> None:
    from tests.stack import MODELS, SAMPLES
    from training.calibrate import BONUSES, CARD_START, calibrate, main

    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = sorted(references)
    for split, chosen in (("validation", names[:3]), ("test", names[3:4]), ("test_heldout_voice", names[4:])):
        lines = [json.dumps({"audio": str(SAMPLES / n), "text": references[n]["text"]}) for n in chosen]
        (corpus / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = tmp_path / "model"
    shutil.copytree(MODELS / "tr-espeak-small", model)
    result = calibrate(model, corpus)
    sweep = result["validation_sweep"]
    assert result["bonus"] in BONUSES
    assert sweep[str(result["bonus"])]["wer"] == min(r["wer"] for r in sweep.values())
    assert set(result["held_out"]) == {"test", "test_heldout_voice"}

    run_cli(main, ["calibrate", "--model", str(model), "--corpus", str(corpus), "--write"])
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["word_delimiter_bonus"] == result["bonus"]
    assert "calibration" in manifest["metrics"]
    with pytest.raises(DatasetError, match=r"validation\.jsonl is missing"):
        calibrate(model, tmp_path / "no-corpus")
    assert (model / "README.md").read_text().count(CARD_START) == 1


def test_training_reads_lossless_clips_as_the_service_decodes_them(tmp_path: Path) -> None:
    """Mono 16 kHz FLAC/WAV are read straight with libsndfile (5x faster per clip than opening a
    container); the samples must be exactly the service decoder's. Anything else goes through it."""
    import numpy as np
    import soundfile as sf

    from stt_common import audio

    rng = np.random.default_rng(0)
    cases = {
        "a.flac": (16000, 1, "PCM_16"),
        "b.wav": (16000, 1, "PCM_16"),
        "c.wav": (16000, 1, "PCM_24"),
        "stereo.flac": (16000, 2, "PCM_16"),
        "rate.wav": (22050, 1, "PCM_16"),
        "float.wav": (16000, 1, "FLOAT"),
    }
    for name, (rate, channels, subtype) in cases.items():
        samples = (rng.standard_normal((rate, channels)) * 0.1).clip(-1, 1).astype(np.float32)
        sf.write(tmp_path / name, samples if channels > 1 else samples[:, 0], rate, subtype=subtype)
        ours = load_audio(name, str(tmp_path))
        assert np.array_equal(ours, audio.decode(tmp_path / name, 16000, 3600)), name
        assert ours.dtype == np.float32
        assert len(ours) == 16000


def test_pause_augmentation_pads_each_side_at_the_clips_own_noise_floor() -> None:
    import numpy as np
    import torch

    from training.collator import noise_floor, with_pauses

    rng = np.random.default_rng(0)
    speech = (np.cos(np.arange(16000) / 5) * 0.3).astype(np.float32)
    clean = np.concatenate([np.zeros(3200, np.float32), speech])
    noisy = clean + rng.standard_normal(len(clean)).astype(np.float32) * 0.01
    assert noise_floor(clean) == 0.0
    assert 0.008 < noise_floor(noisy) < 0.012

    def pauses(out: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = np.lib.stride_tricks.sliding_window_view(out, 64)
        start = int(np.flatnonzero((windows == clip[3200:3264]).all(axis=1))[0]) - 3200
        assert np.array_equal(out[start : start + len(clip)], clip)  # the clip itself is untouched
        return out[:start], out[start + len(clip) :]

    torch.manual_seed(0)
    leads = set()
    for clip in (clean, noisy):
        for _ in range(20):
            lead, trail = pauses(with_pauses(clip, 0.5), clip)
            assert len(lead) < 8000
            assert len(trail) < 8000
            leads.add(len(lead))
            pad = np.concatenate([lead, trail])
            if clip is clean:
                assert not pad.any()  # a clean recording pauses in digital silence
            elif len(pad) > 2000:
                assert 0.007 < float(np.sqrt((pad**2).mean())) < 0.013  # a noisy one in its own noise
    assert len(leads) > 30  # random lengths
    torch.manual_seed(0)
    first = with_pauses(clean, 0.5)
    torch.manual_seed(0)
    assert np.array_equal(first, with_pauses(clean, 0.5))  # torch's seed makes it repeatable


def test_the_language_model_is_built_from_training_texts_tuned_on_validation_and_written(tmp_path: Path) -> None:
    from stt_common.model_folder import read_manifest, write_manifest
    from tests.stack import MODELS, SAMPLES
    from training.lm import CARD_START, LM_FILE, WEIGHTS, WORD_SCORES, build_char_lm, main
    from worker.recognizer import Recognizer

    references = json.loads((SAMPLES / "references.json").read_text(encoding="utf-8"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    names = sorted(references)
    for split, chosen in (
        ("train", names),
        ("validation", names[:3]),
        ("test", names[3:4]),
        ("test_heldout_voice", names[4:]),
    ):
        lines = [json.dumps({"audio": str(SAMPLES / n), "text": references[n]["spoken"]}) for n in chosen]
        (corpus / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    arpa = build_char_lm([references[n]["spoken"] for n in names], tmp_path / "lm.arpa.gz")
    import gzip
    import re

    with gzip.open(arpa, "rt", encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("\\data\\")
    assert "\t" in text
    assert "ngram 6=" in text
    # characters and the word delimiter are the model's words
    assert re.search(r"^-[\d.]+\t\|\t", text, re.M)
    assert re.search(r"^-[\d.]+\tç\t", text, re.M)
    assert "\tT" not in text  # the texts were normalised (Turkish lower case) first

    model = tmp_path / "model"
    shutil.copytree(MODELS / "tr-espeak-small", model)
    manifest = read_manifest(model)
    manifest.language_model = None
    del manifest.files[LM_FILE]
    write_manifest(model, manifest)
    (model / LM_FILE).unlink()
    run_cli(main, ["lm", "--model", str(model), "--corpus", str(corpus), "--write"])
    manifest = read_manifest(model)
    assert manifest.language_model is not None
    assert LM_FILE in manifest.files
    assert (model / LM_FILE).read_bytes() == arpa.read_bytes()  # the same texts, the same bytes: a stable sha256
    assert manifest.language_model.weight in WEIGHTS
    assert manifest.language_model.word_score in WORD_SCORES
    result = manifest.metrics["language_model"]
    assert len(result["validation_sweep"]) == len(WEIGHTS) * len(WORD_SCORES)
    best = min(r["wer"] for r in result["validation_sweep"])
    assert (
        next(
            r
            for r in result["validation_sweep"]
            if r["weight"] == manifest.language_model.weight and r["word_score"] == manifest.language_model.word_score
        )["wer"]
        == best
    )
    assert Recognizer.load(model).decoder.beam is not None
    assert (model / "README.md").read_text().count(CARD_START) == 1
