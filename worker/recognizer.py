"""The inference engine: a loaded model folder that turns samples into a Transcript. No Celery here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stt_common import audio
from stt_common.errors import ModelError
from stt_common.model_folder import (
    ONNX_FILES,
    VOCAB,
    Manifest,
    read_manifest,
    read_vocab,
    variant_files,
    verify_files,
)
from stt_common.transcript import SegmentRules, Transcript, segment
from worker.beam_search import BeamSearch, TokenSearch
from worker.chunking import ChunkPlan, chunks
from worker.ctc import CtcDecoder
from worker.features import fbank_features
from worker.word_lm import WordSearch

# Called with the fraction of the audio done after each window; may raise to stop the transcription.
ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class Timed:
    transcript: Transcript
    decode_s: float
    inference_s: float


class Recognizer:
    def __init__(
        self,
        manifest: Manifest,
        session: ort.InferenceSession,
        decoder: CtcDecoder,
        plan: ChunkPlan,
        segment_rules: SegmentRules,
    ) -> None:
        self.manifest = manifest
        self.session = session
        self.decoder = decoder
        self.plan = plan
        self.segment_rules = segment_rules
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        variant: str = "int8",
        threads: int = 1,
        window_seconds: float = 30.0,
        overlap_seconds: float = 4.0,
        pause_seconds: float = 0.3,
        vad_aggressiveness: int = 2,
        segment_rules: SegmentRules | None = None,
        language_model: bool = True,
    ) -> Recognizer:
        """Load and verify a model folder. Falls back to the other ONNX variant if one is absent.
        `language_model`: decode with the folder's language model when it has one (else greedily).
        Audio is cut at pauses of `pause_seconds` (0: never), and speech running longer than
        `window_seconds` is transcribed in windows overlapping by `overlap_seconds` (worker/chunking.py)."""
        manifest = read_manifest(model_dir)
        available = manifest.variants()
        chosen = variant if variant in available else available[0]
        onnx_file = ONNX_FILES[chosen]
        verify_files(model_dir, manifest, [*variant_files(manifest.files, chosen), VOCAB])
        vocab = read_vocab(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Memory patterns are planned and cached per input shape, and chunks cut at pauses come in every
        # length: without them xlsr-large ran as fast and its memory stayed flat (docs/BENCHMARKS.md).
        options.enable_mem_pattern = False
        try:
            session = ort.InferenceSession(
                str(Path(model_dir) / onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{model_dir}/{onnx_file} does not load in onnxruntime: {exc}") from exc
        vocab_size = session.get_outputs()[0].shape[-1]
        if isinstance(vocab_size, int) and vocab_size != len(vocab):
            raise ModelError(f"{model_dir}: the model emits {vocab_size} classes but {VOCAB} has {len(vocab)}")
        beam: TokenSearch | None = None
        lowercase = manifest.output_case == "lower"
        if language_model and manifest.word_language_model is not None:
            words = manifest.word_language_model
            verify_files(model_dir, manifest, [words.file, words.unigrams])
            blank, delimiter = manifest.blank_token, manifest.word_delimiter_token
            beam = WordSearch(
                Path(model_dir), words, vocab, blank, delimiter, lowercase=lowercase, silent=manifest.special_tokens
            )
        elif language_model and manifest.language_model is not None:
            verify_files(model_dir, manifest, [manifest.language_model.file])
            beam = BeamSearch(
                Path(model_dir) / manifest.language_model.file,
                manifest.language_model,
                vocab,
                manifest.blank_token,
                manifest.word_delimiter_token,
                lowercase=lowercase,
            )
        decoder = CtcDecoder(
            vocab,
            manifest.blank_token,
            manifest.word_delimiter_token,
            manifest.word_delimiter_bonus,
            beam,
            silent=manifest.special_tokens,
            lowercase=lowercase,
        )
        plan = ChunkPlan.from_seconds(
            window_seconds,
            overlap_seconds,
            manifest.sample_rate,
            manifest.frame_stride_samples,
            pause_s=pause_seconds,
            vad_mode=vad_aggressiveness,
        )
        return cls(manifest, session, decoder, plan, segment_rules or SegmentRules())

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
        if self.manifest.features is None and self.manifest.do_normalize:
            # What Wav2Vec2FeatureExtractor does: zero mean, unit variance per utterance.
            values = (values - values.mean()) / np.sqrt(values.var() + 1e-7)
        shortfall = self.manifest.receptive_field_samples - len(values)
        if shortfall > 0:  # a clip shorter than one frame still gets a (silent-padded) frame
            values = np.pad(values, (0, shortfall))
        if self.manifest.features is not None:
            values = fbank_features(values, self.manifest.features, self.manifest.sample_rate)
        (out,) = self.session.run(None, {self.input_name: values[np.newaxis]})
        return out[0]  # type: ignore[no-any-return]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe mono float32 samples at the model's sample rate."""
        return self.transcribe_stream([samples])

    def transcribe_stream(
        self,
        blocks: Iterable[np.ndarray],
        *,
        total_samples: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Transcribe a stream of sample blocks chunk by chunk, in memory bounded by one window.
        `total_samples` (when known) turns the samples consumed into progress."""
        ctc = self.decoder.stream(self.manifest.frame_seconds)
        consumed = 0
        for chunk in chunks(blocks, self.plan):
            logits = self.logits(chunk.samples)
            end = None if chunk.keep_to is None else chunk.keep_to - chunk.first_frame
            ctc.feed(
                logits[chunk.keep_from - chunk.first_frame : end],
                first_frame=chunk.keep_from,
                after_pause=chunk.after_pause,
            )
            consumed = chunk.end_sample
            if on_progress is not None and total_samples:
                on_progress(min(1.0, consumed / total_samples))
        text, words = ctc.finish()
        return Transcript(
            text=text,
            words=words,
            segments=segment(words, self.segment_rules),
            duration_s=round(consumed / self.manifest.sample_rate, 3),
            model=self.name,
        )

    def transcribe_file(
        self,
        source: audio.Source,
        max_seconds: float,
        *,
        expected_seconds: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Timed:
        """Decode and transcribe as a stream. Timings split the interleaved decode and inference."""
        rate = self.manifest.sample_rate
        decode_s = 0.0

        def timed_blocks() -> Iterable[np.ndarray]:
            nonlocal decode_s
            blocks = audio.stream(source, rate, max_seconds)
            while True:
                t0 = time.perf_counter()
                block = next(blocks, None)
                decode_s += time.perf_counter() - t0
                if block is None:
                    return
                yield block

        started = time.perf_counter()
        total = round(expected_seconds * rate) if expected_seconds else None
        transcript = self.transcribe_stream(timed_blocks(), total_samples=total, on_progress=on_progress)
        return Timed(transcript, decode_s=decode_s, inference_s=time.perf_counter() - started - decode_s)
