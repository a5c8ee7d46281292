"""The conformer blocks of wav2vec2-conformer and w2v-BERT rewritten for export, with the same function.

Two parts of those blocks stay out of INT8 or run slowly when exported as transformers writes them:

- the convolution module's pointwise convolutions (Conv1d with kernel 1 over (batch, channels, time)):
  dynamic INT8 covers MatMul, so they stayed fp32, a quarter of a conformer's weights. Written as
  Linear layers over (batch, time, channels) they quantise like the attention's, and the module runs
  time-major except around its depthwise convolution;
- w2v-BERT's relative-key position bias gathers a (query, key, head size) table of distance embeddings
  and contracts it with the queries (an Einsum over a tensor of frames² × head size). Contracting the
  queries with the few distinct distances first and then picking each (query, key) pair's distance
  gives the same scores with a fraction of the work and memory.

Only the export uses these: training and the parity reference keep the original modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn


def _linear(conv: nn.Conv1d) -> nn.Linear:
    """A kernel-1 Conv1d as the Linear layer it is."""
    out_channels, in_channels, _ = conv.weight.shape
    linear = nn.Linear(in_channels, out_channels, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight[:, :, 0])
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear


class TimeMajorConvolutionModule(nn.Module):
    """Drop-in for Wav2Vec2ConformerConvolutionModule (same padding, BatchNorm) and
    Wav2Vec2BertConvolutionModule (causal left padding, LayerNorm after the depthwise convolution)."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module  # its norms and depthwise convolution, used as they are
        self.pointwise1, self.pointwise2 = _linear(module.pointwise_conv1), _linear(module.pointwise_conv2)
        self.causal = hasattr(module, "depthwise_layer_norm")

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        m = self.module
        x = m.layer_norm(hidden_states)
        if attention_mask is not None:
            x = x.masked_fill(~attention_mask.bool().unsqueeze(-1), 0.0)
        x = nn.functional.glu(self.pointwise1(x), dim=-1).transpose(1, 2)
        if self.causal:
            x = nn.functional.pad(x, (m.depthwise_conv.kernel_size[0] - 1, 0))
            x = m.activation(m.depthwise_layer_norm(m.depthwise_conv(x).transpose(1, 2)))
        else:
            x = m.activation(m.batch_norm(m.depthwise_conv(x))).transpose(1, 2)
        return self.pointwise2(x)


def relative_key_bias(module: Any, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `_apply_relative_key_position_encoding` (w2v-BERT): the same bias, computed as the
    queries times each distance's embedding, then each (query, key) pair's distance picked out."""
    query_length, key_length = query.shape[2], key.shape[2]
    left, right = module.left_max_position_embeddings, module.right_max_position_embeddings
    distance = (
        torch.arange(key_length, device=query.device)[None, :]
        - torch.arange(query_length, device=query.device)[:, None]
    )
    distance = distance.clamp(-left, right) + left  # (query, key) → row of the distance table
    table = module.distance_embedding.weight.to(query.dtype)  # (distances, head size)
    by_distance = torch.matmul(query, table.t())  # (batch, heads, query, distances)
    flat = torch.arange(query_length, device=query.device)[:, None] * table.shape[0] + distance
    scores = by_distance.flatten(2)[:, :, flat]  # (batch, heads, query, key)
    return query, scores * module.scaling


@contextmanager
def _swapped_conv_modules(model: Any) -> Iterator[None]:
    swapped = [
        (layer, layer.conv_module)
        for layer in model.modules()
        if type(getattr(layer, "conv_module", None)).__name__.endswith("ConvolutionModule")
    ]
    for layer, module in swapped:
        layer.conv_module = TimeMajorConvolutionModule(module).eval()
    try:
        yield
    finally:
        for layer, module in swapped:
            layer.conv_module = module


@contextmanager
def _relative_key_bias(model: Any) -> Iterator[None]:
    import importlib

    modeling = importlib.import_module(type(model).__module__)
    name = "_apply_relative_key_position_encoding"  # transformers' w2v-BERT computes the bias in this function
    original = getattr(modeling, name, None)
    if original is None:  # a family without relative-key attention
        yield
        return
    setattr(modeling, name, relative_key_bias)
    try:
        yield
    finally:
        setattr(modeling, name, original)


@contextmanager
def conformer_rewrites(model: Any) -> Iterator[Any]:
    """Swap a conformer model's convolution modules and relative-key bias for the rewritten ones while
    the block runs; a model without them is left as it is."""
    with ExitStack() as stack:
        stack.enter_context(_swapped_conv_modules(model))
        stack.enter_context(_relative_key_bias(model))
        yield model
