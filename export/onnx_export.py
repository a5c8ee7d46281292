"""Checkpoint → ONNX fp32 (export/time_major.py, export/conformer.py) → INT8 (export/quantize.py) → model folder."""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.quantize import Quantized, quantize_int8
from stt_common.errors import ModelError
from stt_common.model_folder import (
    MANIFEST,
    ONNX_FILES,
    VOCAB,
    WORD_LM_DIR,
    FbankFeatures,
    Manifest,
    add_word_language_model,
    file_entry,
    variant_files,
    write_manifest,
)
from worker.features import HOP_SAMPLES, WINDOW_SAMPLES, fbank_features

log = logging.getLogger(__name__)


class ExportError(Exception):
    """The checkpoint cannot become a servable model; the message says what to fix."""


@dataclass(frozen=True)
class ExportOptions:
    name: str
    language: str = "tr"
    opset: int = 17
    quantize: bool = True
    # What to quantize: MatMul only. Quantizing convolutions too (onnxruntime's default) ran slower
    # on CPU for wav2vec2 and is a known source of accuracy loss.
    quantize_ops: tuple[str, ...] = ("MatMul",)
    # Export the convolutional feature encoder as time-major MatMuls (export/time_major.py), so INT8
    # covers it too; False keeps its Conv1d layers, in fp32.
    time_major_features: bool = True
    parity_atol: float = 1e-3
    description: str = ""
    # The parity gate on real speech: INT8 may lose at most this much WER against fp32 on the dev set.
    dev_set: str | None = None  # a dataset as training/ takes it: folder of manifests, manifest, hub id
    dev_split: str = "validation"
    dev_max_clips: int = 300
    max_int8_wer_increase: float = 0.01
    keep_fp32: bool = True  # False: ship only the INT8 file (after the gate), e.g. for a model committed to git
    target_lang: str | None = None  # an MMS-style checkpoint's adapter and vocabulary to export
    keep_case: bool = False  # write the vocabulary's own case instead of Turkish lower case


# transformers' CTC models that read the waveform through wav2vec2's convolutional feature encoder: one
# export path (AutoModelForCTC) serves them all, and the time-major rewrite applies to each.
WAVEFORM_FAMILIES = (
    "wav2vec2",
    "wav2vec2-conformer",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
    "sew",
    "sew-d",
)
# Families that read log-mel filterbank features (computed in the worker: worker/features.py).
FEATURE_FAMILIES = ("wav2vec2-bert",)


@dataclass(frozen=True)
class Checkpoint:
    model: Any  # a transformers *ForCTC in eval mode
    vocab: dict[str, int]
    tokenizer: Any  # Wav2Vec2CTCTokenizer
    extractor: Any  # Wav2Vec2FeatureExtractor, or SeamlessM4TFeatureExtractor for a features family
    features: FbankFeatures | None  # what the model reads instead of the waveform


def load_checkpoint(checkpoint: str, target_lang: str | None = None) -> Checkpoint:
    """Load model, vocabulary and feature-extractor settings from a hub id or a local folder. With
    `target_lang`, an MMS-style checkpoint loads that language's adapter and vocabulary."""
    from transformers import AutoConfig, AutoModelForCTC, Wav2Vec2CTCTokenizer

    try:
        config = AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read a model config from {checkpoint!r}: {exc}") from exc
    families = WAVEFORM_FAMILIES + FEATURE_FAMILIES
    if config.model_type not in families or not any(a.endswith("ForCTC") for a in config.architectures or []):
        raise ExportError(
            f"{checkpoint!r} is a {config.model_type} model ({config.architectures}); a checkpoint fine-tuned "
            f"with a CTC head (*ForCTC) of one of these families is needed: {', '.join(families)}"
        )
    _check_language(checkpoint, target_lang)
    try:
        tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(checkpoint, target_lang=target_lang)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{checkpoint!r} has no CTC tokenizer (vocab.json): {exc}") from exc
    saved = _saved_json(checkpoint, "tokenizer_config.json") or {}
    if isinstance(saved.get("word_delimiter_token"), str):
        # transformers 5 reloads a Wav2Vec2CTCTokenizer's word delimiter as "|" whatever was saved (a
        # checkpoint that separates words with "▁" would lose its spaces), and the property's setter is
        # shadowed by the special-token map.
        tokenizer._word_delimiter_token = saved["word_delimiter_token"]
    vocab = dict(
        tokenizer.encoder
    )  # vocab.json as saved (the chosen language's): tokens added later are not in the head
    extractor, features = _feature_extractor(checkpoint, config.model_type in FEATURE_FAMILIES)
    adapter = {"target_lang": target_lang, "ignore_mismatched_sizes": True} if target_lang else {}
    try:
        model = AutoModelForCTC.from_pretrained(checkpoint, **adapter).eval()
    except (OSError, ValueError) as exc:  # no adapter for that language, or weights that do not fit
        raise ExportError(f"cannot load {checkpoint!r}{f' for {target_lang}' if target_lang else ''}: {exc}") from exc
    outputs = model.lm_head.out_features
    if len(vocab) != outputs:
        raise ExportError(
            f"the vocabulary has {len(vocab)} tokens but the model's CTC head has {outputs} "
            "outputs; export the tokenizer the model was trained with"
        )
    return Checkpoint(model, vocab, tokenizer, extractor, features)


def _feature_extractor(checkpoint: str, reads_features: bool) -> tuple[Any, FbankFeatures | None]:
    """The checkpoint's feature extractor, and the features the worker must compute (None: the waveform)."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

    if not reads_features:
        try:
            return Wav2Vec2FeatureExtractor.from_pretrained(checkpoint), None
        except (OSError, ValueError):
            return Wav2Vec2FeatureExtractor(), None  # the wav2vec2 defaults: 16 kHz, normalised
    try:
        extractor = SeamlessM4TFeatureExtractor.from_pretrained(checkpoint)
    except (OSError, ValueError):
        extractor = SeamlessM4TFeatureExtractor()  # w2v-bert-2.0's: 80 mel bins, pairs stacked
    if extractor.sampling_rate != 16000:
        raise ExportError(f"{checkpoint!r} reads {extractor.sampling_rate} Hz features; 16 kHz is supported")
    return extractor, FbankFeatures(num_mel_bins=extractor.num_mel_bins, stride=extractor.stride)


def _saved_json(checkpoint: str, name: str) -> dict[str, Any] | None:
    """One of the checkpoint's JSON files (local folder or hub), or None without it."""
    from transformers.utils.hub import cached_file

    path = cached_file(checkpoint, name, _raise_exceptions_for_missing_entries=False)
    value = json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    return value if isinstance(value, dict) else None


def _check_language(checkpoint: str, target_lang: str | None) -> None:
    """An MMS-style vocab.json holds one vocabulary per language: one must be chosen, and exist."""
    vocab = _saved_json(checkpoint, "vocab.json") or {}
    languages = sorted(lang for lang, value in vocab.items() if isinstance(value, dict))
    shown = ", ".join(languages[:20]) + (" …" if len(languages) > 20 else "")
    if languages and target_lang is None:
        raise ExportError(
            f"{checkpoint!r} holds vocabularies for {len(languages)} languages ({shown}); choose one with --target-lang"
        )
    if target_lang is not None and target_lang not in languages:
        raise ExportError(
            f"{checkpoint!r} has no vocabulary for {target_lang!r}" + (f" (it has {shown})" if shown else "")
        )


def _language_model_dir(checkpoint: str) -> Path | None:
    """The checkpoint's `language_model/` folder (a local one, or fetched from the hub), or None."""
    local = Path(checkpoint)
    if local.is_dir():
        return local / WORD_LM_DIR if (local / WORD_LM_DIR).is_dir() else None
    from huggingface_hub import snapshot_download

    fetched = Path(snapshot_download(checkpoint, allow_patterns=[f"{WORD_LM_DIR}/*"])) / WORD_LM_DIR
    return fetched if fetched.is_dir() else None


def frame_geometry(config: Any, features: FbankFeatures | None = None) -> tuple[int, int]:
    """(stride, receptive field) of one output frame, in input samples: of the convolutional feature
    encoder, or of the filterbank frames stacked `features.stride` at a time; an adapter after the
    encoder (`add_adapter`: strided convolutions, padded) multiplies the stride."""
    if features is not None:
        stride, field = HOP_SAMPLES * features.stride, WINDOW_SAMPLES
    else:
        stride = math.prod(config.conv_stride)
        field, jump = 1, 1
        for kernel, step in zip(config.conv_kernel, config.conv_stride, strict=True):
            field += (kernel - 1) * jump
            jump *= step
    if getattr(config, "add_adapter", False):
        stride *= config.adapter_stride**config.num_adapter_layers
    return stride, field


def special_tokens(tokenizer: Any, vocab: dict[str, int]) -> list[str]:
    """Tokens the transcript never shows (<s>, </s>, [UNK], …): the tokenizer's specials but the blank
    and the word delimiter, which the decoder treats on their own."""
    shown = {tokenizer.pad_token, tokenizer.word_delimiter_token}
    return sorted(t for t in tokenizer.all_special_tokens if t in vocab and t not in shown)


def describe_vocabulary(vocab: dict[str, int], tokenizer: Any) -> dict[str, Any]:
    """What the model can write, for the manifest and the model card: its letters and their case, and
    anything outside the Turkish alphabet."""
    from stt_common.text import TURKISH_LETTERS, turkish_lower

    specials = set(tokenizer.all_special_tokens) | {tokenizer.word_delimiter_token}
    characters = sorted(t for t in vocab if t not in specials)
    letters = [t for t in characters if t.isalpha()]
    upper = [t for t in letters if t != turkish_lower(t)]
    case = "upper" if upper and len(upper) == len(letters) else "mixed" if upper else "lower"
    return {
        "tokens": len(vocab),
        "characters": "".join(characters),
        "case": case,
        "word_delimiter": tokenizer.word_delimiter_token,
        "blank": tokenizer.pad_token,
        "special_tokens": sorted(t for t in specials if t in vocab and t != tokenizer.word_delimiter_token),
        "outside_turkish": "".join(t for t in characters if turkish_lower(t) not in TURKISH_LETTERS),
    }


def export_fp32(
    model: Any, path: Path, opset: int, time_major_features: bool = True, features: FbankFeatures | None = None
) -> None:
    """The graph from (batch, samples) waveforms, or from (batch, frames, bins × stride) features."""
    import torch

    from export.conformer import conformer_rewrites
    from export.time_major import time_major_features as rewritten

    if features is None:
        name, dummy = "input_values", torch.zeros(1, 16000, dtype=torch.float32)
    else:
        name, dummy = "input_features", torch.zeros(1, 50, features.num_mel_bins * features.stride)
    rewrite = time_major_features and features is None
    with (
        tempfile.TemporaryDirectory(dir=path.parent) as tmp,
        torch.no_grad(),
        rewritten(model) if rewrite else nullcontext(model),
        conformer_rewrites(model) as exported,
    ):
        written = Path(tmp) / path.name
        torch.onnx.export(
            exported,
            (dummy,),
            str(written),
            input_names=[name],
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "frames"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        _one_file_or_two(written, path)


def _one_file_or_two(written: Path, path: Path) -> None:
    """Move the exported graph to `path`. Past protobuf's 2 GB (w2v-BERT 2.0, XLS-R 1B, MMS 1B) the
    exporter writes each weight to a file of its own beside the graph: gather them into `path`.data."""
    import onnx

    if [p for p in written.parent.iterdir() if p != written]:
        model = onnx.load(str(written))  # with its weights
        onnx.save(
            model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data"
        )
    else:
        written.rename(path)


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """ONNX files carry their own description, so a lone file still says what it is."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # weights in `path`.data stay where they are
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def torch_logits(model: Any, samples: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(samples[np.newaxis, :])).logits[0].numpy()


def ort_logits(path: Path, samples: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: samples[np.newaxis]})[0][0]


def parity_samples(seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(1234)
    samples = rng.standard_normal(int(seconds * rate)).astype(np.float32)
    return (samples - samples.mean()) / (samples.std() + 1e-7)


def dev_set_gate(folder: Path, options: ExportOptions) -> dict[str, Any]:
    """WER/CER of the exported fp32 and INT8 models on the dev set; raise if INT8 loses too much."""
    from training.data import load_audio, load_split, undecoded
    from training.evaluate import error_rates
    from training.text import normalize
    from worker.recognizer import Recognizer

    rows = undecoded(load_split(options.dev_set or "", options.dev_split), "audio")
    rows = rows.select(range(min(len(rows), options.dev_max_clips)))
    references = [normalize(t) for t in rows["text"]]
    clips = [load_audio(row["audio"], row.get("_base_dir")) for row in rows]  # decoded once, for both variants
    metrics: dict[str, Any] = {"dev_set": f"{options.dev_set}:{options.dev_split}", "dev_clips": len(rows)}
    for variant in ("fp32", "int8") if options.quantize else ("fp32",):
        recognizer = Recognizer.load(folder, variant=variant, threads=2)
        hypotheses = [recognizer.transcribe(samples).text for samples in clips]
        scores = error_rates(references, hypotheses)
        metrics[f"wer_{variant}"], metrics[f"cer_{variant}"] = round(scores["wer"], 4), round(scores["cer"], 4)
    if options.quantize and metrics["wer_int8"] - metrics["wer_fp32"] > options.max_int8_wer_increase:
        raise ExportError(
            f"INT8 WER {metrics['wer_int8']:.4f} is more than {options.max_int8_wer_increase:.4f} above fp32 "
            f"{metrics['wer_fp32']:.4f} on {metrics['dev_set']}; keep the feature encoder in fp32 "
            "(--conv-features) or export fp32 only (--no-int8)"
        )
    return metrics


def export_checkpoint(checkpoint: str, out: Path, options: ExportOptions) -> Manifest:
    """Write the model folder at `out` atomically: it appears complete, or not at all."""
    loaded = load_checkpoint(checkpoint, options.target_lang)
    model, vocab, tokenizer, extractor = loaded.model, loaded.vocab, loaded.tokenizer, loaded.extractor
    features = loaded.features
    stride, field = frame_geometry(model.config, features)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        fp32 = staging / ONNX_FILES["fp32"]
        export_fp32(model, fp32, options.opset, options.time_major_features, features)
        samples = parity_samples(rate=extractor.sampling_rate)
        if features is not None:  # the worker's features; their parity with transformers' is tested
            samples = fbank_features(samples, features)
        reference = torch_logits(model, samples)
        max_diff = float(np.abs(ort_logits(fp32, samples) - reference).max())
        if max_diff > options.parity_atol:
            raise ExportError(f"ONNX fp32 logits differ from PyTorch by {max_diff:.2e} > {options.parity_atol}")
        metrics: dict[str, Any] = {"parity_fp32_max_abs_diff": max_diff}
        quantized = Quantized([], [])
        if options.quantize:
            int8 = staging / ONNX_FILES["int8"]
            quantized = quantize_int8(fp32, int8, options.quantize_ops)
            agreement = float((ort_logits(int8, samples).argmax(-1) == reference.argmax(-1)).mean())
            metrics["parity_int8_frame_agreement"] = agreement
        (staging / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
        onnx_meta = {
            "name": options.name,
            "language": options.language,
            "sample_rate": str(extractor.sampling_rate),
            "frame_stride_samples": str(stride),
            "vocab": json.dumps(vocab, ensure_ascii=False),
        }
        for name in ONNX_FILES.values():
            if (staging / name).exists():
                add_metadata(staging / name, onnx_meta)
        manifest = Manifest(
            name=options.name,
            language=options.language,
            sample_rate=extractor.sampling_rate,
            frame_stride_samples=stride,
            receptive_field_samples=field,
            do_normalize=bool(getattr(extractor, "do_normalize", False)),
            features=features,
            blank_token=tokenizer.pad_token,
            word_delimiter_token=tokenizer.word_delimiter_token,
            unk_token=tokenizer.unk_token,
            special_tokens=special_tokens(tokenizer, vocab),
            output_case="model" if options.keep_case else "lower",
            files={p.name: file_entry(p) for p in sorted(staging.iterdir()) if p.name != MANIFEST},
            metrics=metrics,
            description=options.description,
            source={
                "checkpoint": str(checkpoint),
                "family": model.config.model_type,
                "target_lang": options.target_lang,
                "vocabulary": describe_vocabulary(vocab, tokenizer),
                "parameters": sum(p.numel() for p in model.parameters()),
                "quantized_ops": list(options.quantize_ops) if options.quantize else [],
                "float_nodes": quantized.float_nodes,
                "stored_int8_weights": quantized.stored_int8,
                "feature_encoder": (
                    "log-mel filterbank (worker/features.py)"
                    if features
                    else "time-major MatMul"
                    if options.time_major_features
                    else "Conv1d"
                ),
            },
        )
        words = _language_model_dir(checkpoint)
        if words is not None:  # the checkpoint's word n-gram (Wav2Vec2ProcessorWithLM), served with it
            try:
                add_word_language_model(staging, manifest, words)
            except ModelError as exc:
                raise ExportError(str(exc)) from exc
        write_manifest(staging, manifest)
        if options.dev_set:
            manifest.metrics.update(dev_set_gate(staging, options))
        if options.quantize and not options.keep_fp32:
            for name in variant_files(manifest.files, "fp32"):
                (staging / name).unlink()
                del manifest.files[name]
        write_manifest(staging, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(out)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
