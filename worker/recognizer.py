"""The inference engine: a loaded model folder that turns samples into a Transcript. No Celery here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stt_common import audio
from stt_common.errors import ModelError
from stt_common.model_folder import ONNX_FILES, VOCAB, Manifest, read_manifest, read_vocab, verify_files
from stt_common.transcript import Transcript
from worker.ctc import CtcDecoder


@dataclass(frozen=True)
class Timed:
    transcript: Transcript
    decode_s: float
    inference_s: float


class Recognizer:
    def __init__(self, manifest: Manifest, session: ort.InferenceSession, decoder: CtcDecoder) -> None:
        self.manifest = manifest
        self.session = session
        self.decoder = decoder
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(cls, model_dir: Path, *, variant: str = "int8", threads: int = 1) -> Recognizer:
        """Load and verify a model folder. Falls back to the other ONNX variant if one is absent."""
        manifest = read_manifest(model_dir)
        available = manifest.variants()
        chosen = variant if variant in available else available[0]
        onnx_file = ONNX_FILES[chosen]
        verify_files(model_dir, manifest, [onnx_file, VOCAB])
        vocab = read_vocab(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(Path(model_dir) / onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{model_dir}/{onnx_file} does not load in onnxruntime: {exc}") from exc
        vocab_size = session.get_outputs()[0].shape[-1]
        if isinstance(vocab_size, int) and vocab_size != len(vocab):
            raise ModelError(f"{model_dir}: the model emits {vocab_size} classes but {VOCAB} has {len(vocab)}")
        decoder = CtcDecoder(vocab, manifest.blank_token, manifest.word_delimiter_token)
        return cls(manifest, session, decoder)

    @property
    def name(self) -> str:
        return self.manifest.name

    def warm_up(self, seconds: float) -> None:
        """Run the graph once or twice so the first real job does not pay for allocation."""
        if seconds <= 0:
            return
        rng = np.random.default_rng(0)
        samples = (rng.standard_normal(int(seconds * self.manifest.sample_rate)) * 0.01).astype(np.float32)
        for _ in range(2):
            self.transcribe(samples)

    def logits(self, samples: np.ndarray) -> np.ndarray:
        values = samples.astype(np.float32, copy=False)
        if self.manifest.do_normalize:
            # What Wav2Vec2FeatureExtractor does: zero mean, unit variance per utterance.
            values = (values - values.mean()) / np.sqrt(values.var() + 1e-7)
        shortfall = self.manifest.receptive_field_samples - len(values)
        if shortfall > 0:  # a clip shorter than one frame still gets a (silent-padded) frame
            values = np.pad(values, (0, shortfall))
        (out,) = self.session.run(None, {self.input_name: values[np.newaxis, :]})
        return out[0]  # type: ignore[no-any-return]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe mono float32 samples at the model's sample rate."""
        logits = self.logits(samples)
        text, words = self.decoder.decode(logits, self.manifest.frame_seconds)
        return Transcript(
            text=text, words=words, duration_s=round(len(samples) / self.manifest.sample_rate, 3),
            model=self.name,
        )

    def transcribe_file(self, source: audio.Source, max_seconds: float) -> Timed:
        t0 = time.perf_counter()
        samples = audio.decode(source, self.manifest.sample_rate, max_seconds)
        t1 = time.perf_counter()
        transcript = self.transcribe(samples)
        return Timed(transcript, decode_s=t1 - t0, inference_s=time.perf_counter() - t1)
