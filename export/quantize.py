"""fp32 graph → INT8 graph: dynamic INT8 for the matrix products, int8 storage for the large weights
the products do not cover.

1. onnxruntime's pre-processing (shape inference, basic graph optimisations) first, as its quantiser
   asks: it folds constant subgraphs (SEW-D's projections of its relative-position table, computed from
   weights alone on every run) and removes the Identity nodes the exporter puts in front of shared
   weights, which hid those weights from the quantiser (SEW-D kept 57 MB of them fp32).
2. Dynamic INT8 (weights int8 per tensor, activations quantised on the fly) for MatMul, except the
   time-major encoder's first layer.
3. What is left in fp32 and large (the positional convolution, folded position tables, w2v-BERT's
   adapter convolutions; depthwise convolutions are under the size floor) is stored as int8 with one
   scale per output channel and a DequantizeLinear in front: the computation stays fp32 (onnxruntime
   dequantises on each run rather than folding), the file shrinks by three quarters of those weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Weights smaller than this stay fp32: biases, norms and small tables cost little and gain nothing.
STORED_INT8_MIN_ELEMENTS = 65536


@dataclass(frozen=True)
class Quantized:
    float_nodes: list[str]  # products kept fp32 on purpose
    stored_int8: list[str]  # fp32 weights stored as int8, dequantised in the graph on each run


def quantize_int8(source: Path, target: Path, ops: tuple[str, ...]) -> Quantized:
    """Write the INT8 graph of the fp32 graph at `source` (weights beside it in `source`.data or not)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from export.time_major import FIRST_LAYER_SCOPE

    external = source.with_name(source.name + ".data").exists()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared = Path(tmp) / source.name
        quant_pre_process(
            str(source),
            str(prepared),
            skip_symbolic_shape=True,  # the time axis is symbolic; onnx's own inference suffices
            save_as_external_data=external,
            all_tensors_to_one_file=True,
            external_data_location=prepared.name + ".data",
        )
        graph = onnx.load(str(prepared), load_external_data=False).graph
        kept = [node.name for node in graph.node if node.op_type in ops and FIRST_LAYER_SCOPE in node.name]
        quantize_dynamic(
            str(prepared),
            str(target),
            op_types_to_quantize=list(ops),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
        )
    return Quantized(kept, store_weights_int8(target))


def store_weights_int8(path: Path, min_elements: int = STORED_INT8_MIN_ELEMENTS) -> list[str]:
    """Replace each fp32 weight of at least `min_elements` in the graph at `path` by int8 values, a scale
    per slice of its first axis (a convolution's output channels), and a DequantizeLinear; returns the
    names of the weights so stored."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    stored, dequantize = [], []
    for index in range(len(graph.initializer)):  # not the scales appended below (a table's can be large)
        weight = graph.initializer[index]
        if weight.data_type != TensorProto.FLOAT or int(np.prod(weight.dims)) < min_elements:
            continue
        values = numpy_helper.to_array(weight)
        scale = np.abs(values.reshape(values.shape[0], -1)).max(axis=1) / 127
        scale[scale == 0] = 1.0
        ints = np.clip(np.round(values / scale.reshape(-1, *[1] * (values.ndim - 1))), -127, 127).astype(np.int8)
        name = weight.name
        graph.initializer[index].CopyFrom(numpy_helper.from_array(ints, f"{name}_int8"))
        graph.initializer.append(numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"))
        graph.initializer.append(numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero"))
        inputs = [f"{name}_int8", f"{name}_scale", f"{name}_zero"]
        dequantize.append(helper.make_node("DequantizeLinear", inputs, [name], name=f"{name}_dequantize", axis=0))
        stored.append(name)
    for position, node in enumerate(dequantize):  # before every node, so the graph stays in order
        graph.node.insert(position, node)
    onnx.save(model, str(path))
    return stored
