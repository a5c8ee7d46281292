"""The servable model folder: `model.int8.onnx` and/or `model.onnx`, `vocab.json`, `manifest.json`.

export/ writes it; the worker loads it (verifying sha256s); the api lists it. No onnxruntime here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from stt_common.errors import ModelError

MANIFEST = "manifest.json"
VOCAB = "vocab.json"
ONNX_FILES = {"int8": "model.int8.onnx", "fp32": "model.onnx"}
FORMAT_VERSION = 1


class FileEntry(BaseModel):
    sha256: str
    bytes: int


class LanguageModel(BaseModel):
    """A character n-gram model (KenLM ARPA, gzipped) that a CTC beam search decodes with."""

    file: str = Field(description="Its file in the folder, listed under `files`.")
    order: int
    weight: float = Field(description="Weight of the language model's log probability in the beam search.")
    word_score: float = Field(description="Added per word delimiter: without it the search prefers fewer words.")
    beam_size: int = Field(default=32, ge=1, description="Hypotheses the search keeps at each frame.")
    token_beam_size: int = Field(
        default=8,
        ge=1,
        description="Tokens tried per frame and hypothesis, most likely first: on the bundled model "
        "8 read exactly what all 39 do at a quarter of the search's time (docs/BENCHMARKS.md).",
    )


class WordLanguageModel(BaseModel):
    """A word n-gram model as public fine-tunes ship it (transformers' Wav2Vec2ProcessorWithLM layout:
    `language_model/` with a KenLM file, `unigrams.txt` and `attrs.json`); worker/word_lm.py."""

    file: str = Field(description="The KenLM file (ARPA or binary), listed under `files`.")
    unigrams: str = Field(description="Its word list, one per line, listed under `files`.")
    alpha: float = Field(0.5, description="Weight of the n-gram's log probability (natural log).")
    beta: float = Field(1.5, description="Added per word.")
    unk_score_offset: float = Field(-10.0, description="Added for a word, or a word in progress, no unigram has.")
    score_boundary: bool = Field(True, description="Score sentence start and end.")
    beam_size: int = Field(default=16, ge=1)
    token_beam_size: int = Field(default=8, ge=1)


class FbankFeatures(BaseModel):
    """Kaldi log-mel filterbank features, normalised per mel bin, `stride` consecutive frames stacked into
    one input vector: what Wav2Vec2-BERT models read instead of the waveform."""

    kind: Literal["kaldi_fbank"] = "kaldi_fbank"
    num_mel_bins: int = 80
    stride: int = 2


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    name: str
    language: str
    sample_rate: int = 16000
    frame_stride_samples: int = Field(320, description="Input samples per output frame (CTC time step).")
    receptive_field_samples: int = Field(400, description="Shortest input that yields one frame.")
    do_normalize: bool = True
    features: FbankFeatures | None = Field(
        None, description="What the model reads: None, the waveform; else log-mel features (worker/features.py)."
    )
    blank_token: str = "<pad>"
    word_delimiter_token: str = "|"
    unk_token: str = "<unk>"
    special_tokens: list[str] = Field(
        default_factory=list,
        description="Tokens never written (<s>, </s>, [UNK], …) besides the blank; tokens written <like_this> "
        "are never written either, listed or not.",
    )
    output_case: Literal["lower", "model"] = Field(
        "lower",
        description="`lower`: transcripts in Turkish lower case (İ → i, I → ı) whatever the vocabulary's case; "
        "`model`: as the vocabulary writes them.",
    )
    word_delimiter_bonus: float = Field(
        0.0,
        description="Added to the word delimiter's logit before the greedy choice of each frame; tuned "
        "on a validation set by `python -m training.calibrate` (a model that drops spaces between words "
        "gets them back).",
    )
    language_model: LanguageModel | None = Field(
        None,
        description="Decode with a beam search over this character language model (`python -m "
        "training.lm` builds and tunes it); absent: greedy decoding.",
    )
    word_language_model: WordLanguageModel | None = Field(
        None,
        description="Decode with a beam search over this word language model; it wins over `language_model` "
        "when both are present (the checkpoint's authors tuned it for their model).",
    )
    files: dict[str, FileEntry]
    metrics: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    description: str = ""

    @property
    def frame_seconds(self) -> float:
        return self.frame_stride_samples / self.sample_rate

    def variants(self) -> list[str]:
        return [v for v, f in ONNX_FILES.items() if f in self.files]


def variant_files(files: dict[str, Any], variant: str) -> list[str]:
    """The files of one ONNX variant: the graph, and its weights file when it has one (past 2 GB)."""
    graph = ONNX_FILES[variant]
    return [name for name in (graph, f"{graph}.data") if name in files]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ModelError(f"model folder {folder} has no {MANIFEST}")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelError(f"{path} is not a valid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise ModelError(f"{path}: format_version {manifest.format_version} is not {FORMAT_VERSION}")
    if VOCAB not in manifest.files or not manifest.variants():
        raise ModelError(f"{path} must list {VOCAB} and at least one of {sorted(ONNX_FILES.values())}")
    if manifest.language_model and manifest.language_model.file not in manifest.files:
        raise ModelError(f"{path}: the language model {manifest.language_model.file} is not listed in files")
    return manifest


def verify_files(folder: Path, manifest: Manifest, names: list[str]) -> None:
    """Fail unless each named file exists with the size and sha256 the manifest records."""
    for name in names:
        path = Path(folder) / name
        entry = manifest.files.get(name)
        if entry is None:
            raise ModelError(f"{folder}: {name} is not listed in {MANIFEST}")
        if not path.is_file():
            raise ModelError(f"{folder}: {name} is missing")
        if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
            raise ModelError(f"{folder}: {name} does not match the sha256 in {MANIFEST}; re-export it")


def read_vocab(folder: Path) -> dict[str, int]:
    try:
        vocab = json.loads((Path(folder) / VOCAB).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder}: cannot read {VOCAB}: {exc}") from exc
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise ModelError(f"{folder}: {VOCAB} must map tokens to integer ids")
    return vocab


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (Path(folder) / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def list_models(models_dir: Path) -> dict[str, tuple[Path, Manifest]]:
    """Every valid model folder under `models_dir`, by name. Broken folders are skipped."""
    found: dict[str, tuple[Path, Manifest]] = {}
    if not Path(models_dir).is_dir():
        return found
    for folder in sorted(Path(models_dir).iterdir()):
        if (folder / MANIFEST).is_file():
            try:
                manifest = read_manifest(folder)
            except ModelError:
                continue
            found[manifest.name] = (folder, manifest)
    return found


WORD_LM_DIR = "language_model"  # transformers' Wav2Vec2ProcessorWithLM layout, carried as it is
KENLM_SUFFIXES = (".arpa", ".bin", ".binary", ".arpa.gz")


def add_word_language_model(folder: Path, manifest: Manifest, source: Path) -> WordLanguageModel:
    """Copy a `language_model/` folder (one KenLM file, `unigrams.txt`, `attrs.json` with alpha, beta,
    unk_score_offset, score_boundary) into the model folder and record it in `manifest` (the caller
    writes it). Refuses a folder that does not hold exactly that."""
    import shutil

    names = sorted(p.name for p in source.iterdir() if not p.name.startswith((".", "__")))
    kenlm = [n for n in names if n.endswith(KENLM_SUFFIXES)]
    if len(kenlm) != 1 or "unigrams.txt" not in names or "attrs.json" not in names:
        raise ModelError(
            f"{source} must hold one KenLM file ({', '.join(KENLM_SUFFIXES)}), unigrams.txt and attrs.json; it has "
            f"{', '.join(names) or 'nothing'}"
        )
    try:
        attrs = json.loads((source / "attrs.json").read_text(encoding="utf-8"))
        settings = WordLanguageModel(
            file=f"{WORD_LM_DIR}/{kenlm[0]}",
            unigrams=f"{WORD_LM_DIR}/unigrams.txt",
            **{k: attrs[k] for k in ("alpha", "beta", "unk_score_offset", "score_boundary") if k in attrs},
        )
    except (ValueError, ValidationError) as exc:
        raise ModelError(f"{source / 'attrs.json'} is not a language model's settings: {exc}") from exc
    target = Path(folder) / WORD_LM_DIR
    target.mkdir(exist_ok=True)
    for name in (kenlm[0], "unigrams.txt", "attrs.json"):
        shutil.copyfile(source / name, target / name)
        manifest.files[f"{WORD_LM_DIR}/{name}"] = file_entry(target / name)
    manifest.word_language_model = settings
    return settings
