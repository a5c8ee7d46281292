"""Models as users bring them: every waveform CTC family in transformers exports through one path and is
served; vocabularies in upper case, with their own special tokens and word delimiter, come out in
Turkish lower case; a multilingual MMS-style checkpoint exports the adapter asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs the `export` extra (torch)")

from api.main import create_app  # noqa: E402
from client.api import SttClient  # noqa: E402
from export.onnx_export import FEATURE_FAMILIES, ExportError, ExportOptions, export_checkpoint  # noqa: E402
from stt_common import audio  # noqa: E402
from stt_common.model_folder import FbankFeatures  # noqa: E402
from stt_common.text import turkish_lower  # noqa: E402
from tests.services import CeleryWorker, ThreadedServer  # noqa: E402
from tests.stack import SAMPLES, Stack, make_stack  # noqa: E402
from training.checkpoints import CTC_CLASSES, config_for  # noqa: E402
from training.random_checkpoint import write_random_checkpoint  # noqa: E402
from training.vocab import turkish_vocab  # noqa: E402
from worker.features import fbank_features, log_mel  # noqa: E402
from worker.recognizer import Recognizer  # noqa: E402

FAMILIES = sorted(CTC_CLASSES)
SPEECH = audio.decode(SAMPLES / "clip01.wav", 16000, 60)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each family's tiny random checkpoint and its exported folder (all in one models folder)."""
    root = tmp_path_factory.mktemp("families")
    made = {}
    for family in FAMILIES:
        checkpoint = write_random_checkpoint(root / "checkpoints" / family, "tiny", seed=1, family=family)
        folder = root / "models" / f"tiny-{family}"
        export_checkpoint(str(checkpoint), folder, ExportOptions(name=f"tiny-{family}"))
        made[family] = (checkpoint, folder)
    return made


def torch_reference(checkpoint: Path, samples: np.ndarray) -> tuple[np.ndarray, Any]:
    """PyTorch's logits for `samples` (through the checkpoint's own feature extractor), and its
    tokenizer to decode a token path as transformers does."""
    from transformers import AutoFeatureExtractor, AutoModelForCTC, Wav2Vec2CTCTokenizer

    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(checkpoint)
    config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    tokenizer._word_delimiter_token = config["word_delimiter_token"]  # transformers 5 reloads it as "|"
    model = AutoModelForCTC.from_pretrained(checkpoint).eval()
    inputs = extractor(samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = model(inputs.get("input_values", inputs.get("input_features"))).logits[0].numpy()
    return logits, tokenizer


def decoded(tokenizer: Any, logits: np.ndarray) -> str:
    """The processor's text for the greedy path through `logits`. Random weights leave near-ties, so
    paths are compared on the served logits (parity is checked on the numbers). Special tokens are
    dropped after decoding: transformers' skip_special_tokens drops them first and then merges the
    letters around them ("n<unk>n" → "n"), where CTC keeps both."""
    text = str(tokenizer.batch_decode(logits.argmax(-1)[None, :])[0])
    for token in set(tokenizer.all_special_tokens) - {tokenizer.word_delimiter_token, tokenizer.pad_token}:
        text = text.replace(token, "")
    return text


def whole_clip(folder: Path) -> Recognizer:
    """The fp32 engine reading a short clip in one window, as PyTorch reads it."""
    return Recognizer.load(folder, variant="fp32", pause_seconds=0, window_seconds=60)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_exports_with_parity_int8_coverage_and_is_served(
    exported: dict[str, tuple[Path, Path]], family: str
) -> None:
    import onnx

    checkpoint, folder = exported[family]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"]["family"] == family
    assert manifest["metrics"]["parity_fp32_max_abs_diff"] < 1e-3
    int8 = onnx.load(str(folder / "model.int8.onnx")).graph.node
    if family in FEATURE_FAMILIES:  # 10 ms filterbank frames, stacked in pairs, halved by the adapter
        assert (manifest["frame_stride_samples"], manifest["receptive_field_samples"]) == (640, 400)
        assert manifest["features"] == {"kind": "kaldi_fbank", "num_mel_bins": 80, "stride": 2}
    else:  # the convolutional encoder, in INT8 but for its first layer
        assert (manifest["frame_stride_samples"], manifest["receptive_field_samples"]) == (320, 400)
        products = {n.name: n.op_type for n in int8 if "feature_extractor" in n.name and "MatMul" in n.op_type}
        assert sorted(op for name, op in products.items() if "conv_layers.0/" not in name) == ["MatMulInteger"] * 6
    assert sum(n.op_type == "MatMulInteger" for n in int8) >= 12  # the transformer's products at least
    # Conformers' pointwise convolutions are INT8 products too (export/conformer.py); only depthwise and
    # positional convolutions (and w2v-BERT's strided adapter) stay Conv; its relative-key bias needs no Einsum.
    convolutions = [n.name for n in int8 if n.op_type == "Conv"]
    assert all(any(kind in name for kind in ("depthwise_conv", "pos_conv", "adapter")) for name in convolutions)
    assert not [n.name for n in int8 if n.op_type == "Einsum"]
    assert isinstance(manifest["source"]["stored_int8_weights"], list)

    reference, tokenizer = torch_reference(checkpoint, SPEECH)
    served = whole_clip(folder)
    logits = served.logits(SPEECH)
    assert logits.shape == reference.shape  # the frame geometry the chunker relies on
    # Features computed in the worker differ from transformers' by up to FBANK_TOLERANCE (see below).
    assert np.abs(logits - reference).max() < (2e-2 if family in FEATURE_FAMILIES else 1e-3)
    assert served.transcribe(SPEECH).text == decoded(tokenizer, logits)
    quantised = Recognizer.load(folder, variant="int8")
    assert quantised.logits(SPEECH).shape == reference.shape
    assert quantised.transcribe(SPEECH).duration_s == pytest.approx(len(SPEECH) / 16000, abs=1e-3)


FBANK_TOLERANCE = 2e-3  # log-mel units (natural log of energy); values on speech span about -15 to 25


def test_the_worker_computes_the_features_transformers_does() -> None:
    """Wav2Vec2-BERT's input: Kaldi log-mel filterbanks, per-bin normalised and stacked in pairs. The
    worker's (kaldi-native-fbank, no torch) against transformers' SeamlessM4TFeatureExtractor (numpy),
    on real speech at several lengths, odd frame counts included."""
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor()
    settings = FbankFeatures(num_mel_bins=80, stride=2)
    for samples in (SPEECH, SPEECH[:16160], SPEECH[:5000], SPEECH[:560]):
        mel = log_mel(samples, 80)
        assert np.abs(mel - extractor._extract_fbank_features(samples)).max() < FBANK_TOLERANCE
        expected = extractor(samples, sampling_rate=16000, return_tensors="np")["input_features"][0]
        got = fbank_features(samples, settings)
        assert got.shape == expected.shape, len(samples)
        assert np.abs(got - expected).max() < 50 * FBANK_TOLERANCE  # normalised: divided by each bin's deviation
    # One frame has no sample variance: transformers writes NaN (a transcript of nothing), the worker zeros.
    assert np.isnan(extractor(SPEECH[:401], sampling_rate=16000)["input_features"][0][:, :80]).all()
    assert (fbank_features(SPEECH[:401], settings) == 0).all()


@pytest.mark.slow
def test_every_family_transcribes_through_a_worker(
    exported: dict[str, tuple[Path, Path]], stack: Stack, tmp_path: Path
) -> None:
    models = next(iter(exported.values()))[1].parent
    served = make_stack(
        stack.settings.database_url,
        stack.settings.redis_url,
        tmp_path,
        models_dir=models,
        default_model=f"tiny-{FAMILIES[0]}",
        warmup_seconds=0.5,
    )
    worker = CeleryWorker(served.env, tmp_path / "worker.log").start()
    server = ThreadedServer(create_app(served.settings))
    try:
        with SttClient(server.url) as stt:
            ids = {f: stt.submit(SAMPLES / "clip01.wav", model=f"tiny-{f}")["id"] for f in FAMILIES}
            for family, job_id in ids.items():
                job = stt.wait(job_id, timeout=120)
                assert (job["status"], job["model"]) == ("succeeded", f"tiny-{family}"), job
                expected = Recognizer.load(exported[family][1]).transcribe_file(SAMPLES / "clip01.wav", 60)
                assert job["result"]["raw_text"] == expected.transcript.text  # formatted on top (test_formatting)
    finally:
        server.stop()
        worker.stop()


# --- Vocabularies as users have them

UPPER_LETTERS = "ABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ'"


def write_upper_case_checkpoint(out: Path) -> Path:
    """A checkpoint whose vocabulary is upper case with [PAD]/[UNK]/<s>/</s> and "▁" between words."""
    from transformers import AutoModelForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    tokens = ["[PAD]", "<s>", "</s>", "[UNK]", "▁", *UPPER_LETTERS]
    out.mkdir(parents=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(out / "vocab.json"),
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
        word_delimiter_token="▁",
    )
    Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(), tokenizer=tokenizer).save_pretrained(out)
    torch.manual_seed(3)
    AutoModelForCTC.from_config(config_for("tiny", len(tokens), 0)).eval().save_pretrained(out)
    return out


def test_an_upper_case_vocabulary_is_written_in_turkish_lower_case(tmp_path: Path) -> None:
    checkpoint = write_upper_case_checkpoint(tmp_path / "upper")
    manifest = export_checkpoint(str(checkpoint), tmp_path / "m", ExportOptions(name="upper"))
    assert manifest.special_tokens == ["</s>", "<s>", "[UNK]"]
    assert (manifest.blank_token, manifest.word_delimiter_token, manifest.output_case) == ("[PAD]", "▁", "lower")
    vocabulary = manifest.source["vocabulary"]
    assert (vocabulary["case"], vocabulary["outside_turkish"], vocabulary["characters"]) == (
        "upper",
        "",
        "".join(sorted(UPPER_LETTERS)),
    )
    _, tokenizer = torch_reference(checkpoint, SPEECH)
    served = whole_clip(tmp_path / "m")
    text = decoded(tokenizer, served.logits(SPEECH))
    assert text != turkish_lower(text), "the random model should write some upper-case letters"
    assert served.transcribe(SPEECH).text == turkish_lower(text)

    kept = export_checkpoint(str(checkpoint), tmp_path / "kept", ExportOptions(name="kept", keep_case=True))
    assert kept.output_case == "model"
    assert whole_clip(tmp_path / "kept").transcribe(SPEECH).text == text


# --- MMS: one checkpoint, an adapter and a vocabulary per language

ENGLISH = {t: i for i, t in enumerate(["<pad>", "|", *"abcdefghijklmnopqrstuvwxyz", "<unk>"])}


@pytest.fixture
def mms_checkpoint(tmp_path: Path) -> Path:
    """Tiny MMS layout: attention adapters in every layer, `adapter.{lang}.safetensors` with each
    language's adapter and CTC head, and a vocab.json holding one vocabulary per language."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    out = tmp_path / "mms"
    vocabularies = {"tur": turkish_vocab(), "eng": ENGLISH}
    torch.manual_seed(5)
    model = Wav2Vec2ForCTC(config_for("tiny", len(ENGLISH), 0, adapter_attn_dim=8)).eval()
    model.save_pretrained(out)
    for lang, vocab in vocabularies.items():
        weights: dict[str, Any] = {
            name: torch.randn(param.shape) for name, param in model._get_adapters().items() if "lm_head" not in name
        }
        weights["lm_head.weight"] = torch.randn(len(vocab), model.config.hidden_size)
        weights["lm_head.bias"] = torch.randn(len(vocab))
        save_file(weights, out / f"adapter.{lang}.safetensors")
    Wav2Vec2FeatureExtractor().save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps(vocabularies, ensure_ascii=False))
    Wav2Vec2CTCTokenizer(str(out / "vocab.json"), target_lang="eng").save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps(vocabularies, ensure_ascii=False))  # nested, as MMS ships it
    return out


def test_an_mms_checkpoint_exports_the_language_asked_for(mms_checkpoint: Path, tmp_path: Path) -> None:
    from transformers import Wav2Vec2ForCTC

    with pytest.raises(ExportError, match=r"vocabularies for 2 languages \(eng, tur\); choose one with --target-lang"):
        export_checkpoint(str(mms_checkpoint), tmp_path / "none", ExportOptions(name="x"))
    with pytest.raises(ExportError, match="fra"):
        export_checkpoint(str(mms_checkpoint), tmp_path / "fra", ExportOptions(name="x", target_lang="fra"))

    manifest = export_checkpoint(str(mms_checkpoint), tmp_path / "tur", ExportOptions(name="x", target_lang="tur"))
    assert json.loads((tmp_path / "tur" / "vocab.json").read_text()) == turkish_vocab()
    assert manifest.source["target_lang"] == "tur"
    reference = Wav2Vec2ForCTC.from_pretrained(mms_checkpoint, target_lang="tur", ignore_mismatched_sizes=True).eval()
    samples = (SPEECH - SPEECH.mean()) / np.sqrt(SPEECH.var() + 1e-7)
    with torch.no_grad():
        expected = reference(torch.from_numpy(samples)[None, :]).logits[0].numpy()
    logits = Recognizer.load(tmp_path / "tur", variant="fp32").logits(SPEECH)
    assert logits.shape == (expected.shape[0], len(turkish_vocab()))
    assert np.abs(logits - expected).max() < 1e-3
    export_checkpoint(str(mms_checkpoint), tmp_path / "eng", ExportOptions(name="y", target_lang="eng"))
    assert Recognizer.load(tmp_path / "eng", variant="fp32").logits(SPEECH).shape[-1] == len(ENGLISH)


# --- A checkpoint's word language model (Wav2Vec2ProcessorWithLM's language_model/ folder)


def test_a_checkpoints_language_model_folder_is_carried_and_served(
    exported: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    import shutil

    from training.lm import build_word_lm
    from worker.word_lm import WordSearch

    checkpoint = Path(shutil.copytree(exported["wav2vec2"][0], tmp_path / "with-lm"))
    words = build_word_lm(["bu bir deneme", "teşekkür ederim"] * 20, checkpoint / "language_model")
    attrs = json.loads((words / "attrs.json").read_text())
    (words / "attrs.json").write_text(json.dumps({**attrs, "alpha": 0.7, "beta": 2.0}))
    manifest = export_checkpoint(str(checkpoint), tmp_path / "m", ExportOptions(name="with-lm"))
    assert manifest.word_language_model is not None
    assert (manifest.word_language_model.alpha, manifest.word_language_model.beta) == (0.7, 2.0)
    assert manifest.word_language_model.file == "language_model/words.arpa"
    served = Recognizer.load(tmp_path / "m")
    assert isinstance(served.decoder.beam, WordSearch)
    assert served.transcribe(SPEECH).duration_s > 3

    (words / "unigrams.txt").unlink()
    with pytest.raises(ExportError, match=r"one KenLM file .*, unigrams.txt and attrs.json"):
        export_checkpoint(str(checkpoint), tmp_path / "broken", ExportOptions(name="broken"))
    assert not (tmp_path / "broken").exists()
