"""Rebuild a Wav2Vec2ForCTC checkpoint from an exported model folder (model.onnx or model.int8.onnx).

The bundled model was trained on a lent GPU machine whose checkpoint did not come back; this recovers a
PyTorch checkpoint from what is committed, so the model can be re-exported (e.g. with another graph)
and measured. From model.int8.onnx the MatMul weights come back dequantized (int8 × scale), which is
exactly what the INT8 model multiplies by; everything else (convolutions, norms, biases) is fp32 as
trained. The architecture comes from a training preset; the script checks that every parameter found
its weight and that the rebuilt model's logits match the ONNX model's.

    python scripts/checkpoint_from_onnx.py models/tr-espeak-small --preset small --out build/ckpt/tr-espeak-small
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def onnx_weights(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """State-dict name → array, read from the nodes that use each weight: the exporter names MatMul weights
    anonymously (stored transposed) and merges identical tensors, so names alone do not say whose they are.
    `shapes` (the target model's parameter shapes) turns the time-major feature layers back into Conv1d."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:  # merged tensors reach their other users through Identity nodes
        if node.op_type == "Identity" and node.input[0] in init:
            init[node.output[0]] = init[node.input[0]]
        elif node.op_type == "DequantizeLinear" and node.input[0] in init:  # stored int8 (export/quantize.py)
            values, scale, zero = (init[name].astype(np.float32) for name in node.input)
            axis_shape = (-1,) + (1,) * (values.ndim - 1)
            init[node.output[0]] = (values - zero.reshape(axis_shape)) * scale.reshape(axis_shape)
    weights: dict[str, np.ndarray] = {}
    for node in graph.node:
        # "/wav2vec2/encoder/layers.0/attention/q_proj/MatMul_quant" → "wav2vec2.encoder.layers.0.attention.q_proj"
        scope = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
        constants = [name if name in init else None for name in node.input]
        if node.op_type == "MatMul" and constants[1]:
            weights[f"{scope}.weight"] = init[node.input[1]].T
        elif node.op_type == "MatMulInteger" and constants[1]:  # quantize_dynamic: X_quantized, _scale, _zero_point
            stem = node.input[1].removesuffix("_quantized")
            quantized, zero = init[node.input[1]].astype(np.float32), init[f"{stem}_zero_point"].astype(np.float32)
            weights[f"{scope}.weight"] = ((quantized - zero) * init[f"{stem}_scale"]).T
        elif node.op_type == "Add" and any(constants):
            weights[f"{scope}.bias"] = init[next(c for c in constants if c)]
        elif node.op_type in ("LayerNormalization", "Conv"):
            for role, name in zip(("weight", "bias"), constants[1:], strict=False):
                if name:
                    weights[f"{scope}.{role}"] = init[name]
    for name in list(weights):  # a time-major feature layer (export/time_major.py) back to its Conv1d
        if ".feature_extractor.conv_layers." in name and (".linear." in name or ".norm." in name):
            value = weights.pop(name)
            name = name.replace(".linear.", ".conv.").replace(".norm.", ".layer_norm.")
            if name.endswith("conv.weight"):
                out_channels, in_channels, kernel = shapes[name]
                value = value.reshape(out_channels, kernel, in_channels).transpose(0, 2, 1)
            weights[name] = value
    return {name: value for name, value in weights.items() if name in shapes or ".pos_conv_embed.conv." in name}


def rebuild(model_dir: Path, preset: str, out: Path) -> Path:
    import torch
    from transformers import Wav2Vec2ForCTC

    from training.checkpoints import build_processor, config_for

    manifest = json.loads((model_dir / "manifest.json").read_text())
    source = model_dir / ("model.onnx" if (model_dir / "model.onnx").exists() else "model.int8.onnx")
    vocab = json.loads((model_dir / "vocab.json").read_text(encoding="utf-8"))
    processor = build_processor(out, [])
    if processor.tokenizer.get_vocab() != vocab:
        raise SystemExit("the model's vocab.json is not the one training.checkpoints builds; copy it by hand")
    config = config_for(preset, len(vocab), vocab[manifest["blank_token"]])
    model = Wav2Vec2ForCTC(config).eval()
    state = model.state_dict()
    weights = onnx_weights(source, {name: tuple(value.shape) for name, value in state.items()})
    pos = weights.pop("wav2vec2.encoder.pos_conv_embed.conv.weight")
    g_name, v_name = (f"wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original{i}" for i in (0, 1))
    weights[v_name] = pos  # weight norm: weight = g * v / |v|, so v = weight and g = |weight| give it back
    weights[g_name] = np.sqrt((pos.astype(np.float64) ** 2).sum(axis=(0, 1), keepdims=True)).astype(np.float32)
    missing = sorted(k for k in state if k not in weights and k != "wav2vec2.masked_spec_embed")
    if missing:
        raise SystemExit(f"no weight found in {source.name} for: {', '.join(missing)}")
    for name, value in weights.items():
        if tuple(state[name].shape) != value.shape:
            raise SystemExit(f"{name}: ONNX {value.shape} vs model {tuple(state[name].shape)}")
        state[name] = torch.tensor(value)
    model.load_state_dict(state)
    check_logits(model, source)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def check_logits(model: object, source: Path) -> None:
    import onnxruntime as ort
    import torch

    samples = np.random.default_rng(0).standard_normal((1, 48000)).astype(np.float32)
    with torch.no_grad():
        rebuilt = model(torch.from_numpy(samples)).logits[0].numpy()  # type: ignore[operator]
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    served = session.run(None, {"input_values": samples})[0][0]
    agreement = float((rebuilt.argmax(-1) == served.argmax(-1)).mean())
    print(
        f"{source.name} vs rebuilt checkpoint: max |Δlogit| {np.abs(rebuilt - served).max():.3g}, "
        f"frame argmax agreement {agreement:.3f}"
    )
    if agreement < 0.9:
        raise SystemExit("the rebuilt checkpoint does not compute what the ONNX model does")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--preset", required=True, help="The training preset the model was built with.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(rebuild(args.model_dir, args.preset, args.out))


if __name__ == "__main__":
    main()
