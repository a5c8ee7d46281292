"""The engine alone (no broker): model folders load with checks, audio of every format transcribes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stt_common import audio
from stt_common.errors import AudioTooLong, EmptyAudio, InvalidAudio, ModelError
from tests.stack import SAMPLES, TINY_MODEL
from worker.recognizer import Recognizer

MODEL = TINY_MODEL


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load(MODEL, threads=1)


def copy_model(tmp_path: Path) -> Path:
    return Path(shutil.copytree(MODEL, tmp_path / "model"))


def test_transcribes_every_sample_format(recognizer: Recognizer) -> None:
    for clip in sorted(SAMPLES.glob("clip*")):
        timed = recognizer.transcribe_file(clip, max_seconds=60)
        t = timed.transcript
        assert t.duration_s == pytest.approx(sf.info(clip).duration, abs=0.01)
        assert t.model == "tr-tiny-random"
        assert t.text == " ".join(w.word for w in t.words)
        assert timed.decode_s > 0
        assert timed.inference_s > 0


def test_same_audio_at_other_rates_and_channels_decodes_alike(tmp_path: Path) -> None:
    data, rate = sf.read(SAMPLES / "clip01.wav", dtype="float32")
    base = audio.decode(SAMPLES / "clip01.wav", 16000, 60)
    stereo = tmp_path / "stereo.flac"
    sf.write(stereo, np.stack([data, data], axis=1), rate)
    assert np.allclose(audio.decode(stereo, 16000, 60), base, atol=1e-3)
    upsampled = tmp_path / "48k.wav"
    sf.write(upsampled, audio.decode(SAMPLES / "clip01.wav", 48000, 60), 48000, subtype="FLOAT")
    again = audio.decode(upsampled, 16000, 60)
    assert len(again) == pytest.approx(len(base), abs=2)
    n = min(len(again), len(base))
    assert np.corrcoef(again[:n], base[:n])[0, 1] > 0.99  # a proper resampler, not sample dropping


def test_fp32_and_int8_agree_on_most_frames() -> None:
    samples = audio.decode(SAMPLES / "clip03.ogg", 16000, 60)
    int8 = Recognizer.load(MODEL, variant="int8").logits(samples).argmax(-1)
    fp32 = Recognizer.load(MODEL, variant="fp32").logits(samples).argmax(-1)
    assert (int8 == fp32).mean() > 0.9


def test_clips_shorter_than_one_frame_still_decode(recognizer: Recognizer) -> None:
    assert recognizer.transcribe(np.zeros(160, dtype=np.float32)).duration_s == 0.01


def test_decode_enforces_limits_and_finite_samples(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(AudioTooLong):
        audio.decode(path, 16000, max_seconds=2)
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(EmptyAudio):
        audio.decode(path, 16000, max_seconds=2)
    sf.write(path, np.array([0.0, np.inf] * 800, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(InvalidAudio, match="NaN or infinite"):
        audio.decode(path, 16000, max_seconds=2)


def test_model_folder_problems_are_named(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)
    with (folder / "model.int8.onnx").open("r+b") as fh:
        fh.seek(-10, 2)
        fh.write(b"corrupted!")
    with pytest.raises(ModelError, match="sha256"):
        Recognizer.load(folder, variant="int8")

    (folder / "vocab.json").unlink()
    with pytest.raises(ModelError, match=r"vocab\.json is missing"):
        Recognizer.load(folder, variant="fp32")

    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid manifest"):
        Recognizer.load(folder)

    (folder / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        Recognizer.load(folder)


def test_vocabulary_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    from stt_common.model_folder import file_entry, read_manifest, write_manifest

    folder = copy_model(tmp_path)
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["ş2"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    manifest = read_manifest(folder)
    manifest.files["vocab.json"] = file_entry(folder / "vocab.json")
    write_manifest(folder, manifest)
    with pytest.raises(ModelError, match="emits 39 classes"):
        Recognizer.load(folder)


def test_a_missing_variant_falls_back_to_the_other(tmp_path: Path) -> None:
    folder = copy_model(tmp_path)
    (folder / "model.int8.onnx").unlink()
    from stt_common.model_folder import read_manifest, write_manifest

    manifest = read_manifest(folder)
    del manifest.files["model.int8.onnx"]
    write_manifest(folder, manifest)
    assert Recognizer.load(folder, variant="int8").manifest.variants() == ["fp32"]
