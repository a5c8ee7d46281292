"""The convolutional feature encoder rewritten as matrix products over (batch, time, channels).

wav2vec2 turns the waveform into frames with seven strided Conv1d layers on (batch, channels, time),
each wrapped in two transposes when it has a LayerNorm. Exported as is, onnxruntime runs those
convolutions in fp32 (dynamic INT8 covers MatMul; its ConvInteger ran slower than fp32) and spends
time in the transposes. The same function written as "gather each output frame's kernel taps, then
one MatMul" runs on (batch, time, channels) with no transposes, and its products quantise like the
transformer's. Only the export uses it: training and the parity reference keep the original modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class TimeMajorConvLayer(nn.Module):
    """One feature-encoder layer (Conv1d without padding, optional norm, activation), time-major."""

    def __init__(self, layer: Any) -> None:  # one of transformers' Wav2Vec2*ConvLayer
        super().__init__()
        conv = layer.conv
        out_channels, in_channels, kernel = conv.weight.shape
        self.kernel, self.stride = kernel, conv.stride[0]
        self.linear = nn.Linear(kernel * in_channels, out_channels, bias=conv.bias is not None)
        with torch.no_grad():  # input features are ordered tap by tap, each tap's channels together
            self.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(out_channels, kernel * in_channels))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)
        self.norm: nn.Module | None = getattr(layer, "layer_norm", None)
        self.activation = layer.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = (x.shape[1] - self.kernel) // self.stride + 1
        if self.kernel == self.stride:  # non-overlapping windows: a reshape
            taps = x[:, : frames * self.stride].reshape(x.shape[0], frames, self.kernel * x.shape[2])
        else:
            last = self.stride * (frames - 1) + 1
            taps = torch.cat([x[:, j : j + last : self.stride] for j in range(self.kernel)], dim=-1)
        y = self.linear(taps)
        if isinstance(self.norm, nn.GroupNorm):  # one group per channel: normalise each channel over time
            # Means over time as products with a row of 1/frames: onnxruntime's ReduceMean over the middle
            # axis took a fifth of a base model's INT8 run (docs/BENCHMARKS.md); the product is 3x faster.
            average = torch.ones_like(y[:, :, :1]).transpose(1, 2) / y.shape[1]
            centred = y - torch.matmul(average, y)
            variance = torch.matmul(average, centred * centred)
            y = centred * (self.norm.weight / torch.sqrt(variance + self.norm.eps)) + self.norm.bias
        elif self.norm is not None:  # LayerNorm over channels: already the last axis
            y = self.norm(y)
        return self.activation(y)


class TimeMajorFeatureEncoder(nn.Module):
    """Drop-in for Wav2Vec2FeatureEncoder (and its copies in the other families) in inference:
    (batch, samples) → (batch, channels, frames)."""

    def __init__(self, encoder: Any) -> None:  # transformers' Wav2Vec2FeatureEncoder or a copy of it
        super().__init__()
        self.conv_layers = nn.ModuleList(TimeMajorConvLayer(layer) for layer in encoder.conv_layers)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        x = input_values[:, :, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x.transpose(1, 2)  # the caller transposes back; onnxruntime removes the pair


# The first layer reads the waveform itself (one channel, a 10-sample kernel): its product is tiny and
# its input is the signal, so it stays fp32 when the rest is quantised.
FIRST_LAYER_SCOPE = "/feature_extractor/conv_layers.0/"


@contextmanager
def time_major_features(model: Any) -> Iterator[Any]:
    """Swap a *ForCTC model's convolutional feature encoder (wav2vec2, HuBERT, WavLM, Data2Vec-Audio,
    UniSpeech, SEW, … all share its layout) for the time-major one while the block runs."""
    base = model.base_model
    original = base.feature_extractor
    base.feature_extractor = TimeMajorFeatureEncoder(original).eval()
    try:
        yield model
    finally:
        base.feature_extractor = original
