"""Log-mel filterbank features for models that read them instead of the waveform (Wav2Vec2-BERT).

Kaldi's fbank (25 ms Povey windows every 10 ms, pre-emphasis, 80 mel bins from 20 Hz, log) computed by
kaldi-native-fbank on 16-bit-scaled samples, then normalised per mel bin over the window and stacked in
pairs: what transformers' SeamlessM4TFeatureExtractor computes in numpy, within 2e-3 on the log-mel
values of real speech (tests/test_model_families.py), without torch or transformers in the worker.
"""

from __future__ import annotations

import numpy as np

from stt_common.model_folder import FbankFeatures

WINDOW_SAMPLES, HOP_SAMPLES = 400, 160  # at 16 kHz


def log_mel(samples: np.ndarray, num_mel_bins: int, rate: int = 16000) -> np.ndarray:
    """(frames, num_mel_bins) log-mel energies; no frame for fewer than 400 samples."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = rate
    options.frame_opts.dither = 0.0  # deterministic: the same audio gives the same transcript
    options.mel_opts.num_bins = num_mel_bins
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(rate, samples.astype(np.float32) * 32768.0)
    fbank.input_finished()
    frames = fbank.num_frames_ready
    if frames == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(frames)]).astype(np.float32)


def fbank_features(samples: np.ndarray, settings: FbankFeatures, rate: int = 16000) -> np.ndarray:
    """(frames / stride, num_mel_bins * stride): normalised per mel bin (sample variance, as
    transformers computes it), padded with zeros to a whole number of strides, then stacked."""
    mel = log_mel(samples, settings.num_mel_bins, rate)
    count = len(mel)
    variance = mel.var(axis=0, ddof=1) if count > 1 else np.zeros(mel.shape[1], dtype=np.float32)
    normalised = (mel - mel.mean(axis=0)) / np.sqrt(variance + 1e-7)
    padded = np.pad(normalised, ((0, -count % settings.stride), (0, 0)))
    return padded.reshape(-1, settings.num_mel_bins * settings.stride).astype(np.float32)
