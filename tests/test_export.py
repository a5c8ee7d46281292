"""export/: a Wav2Vec2ForCTC checkpoint becomes a verified model folder the worker serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs the `export` extra (torch)")

from export.__main__ import main as export_main  # noqa: E402
from export.onnx_export import ExportError, ExportOptions, export_checkpoint, frame_geometry  # noqa: E402
from stt_common import audio  # noqa: E402
from tests.stack import SAMPLES, TINY_MODEL  # noqa: E402
from training.random_checkpoint import write_random_checkpoint  # noqa: E402
from worker.recognizer import Recognizer  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0)


def test_export_writes_a_folder_the_worker_serves_with_torch_parity(checkpoint: Path, tmp_path: Path) -> None:
    assert export_main([str(checkpoint), "--out", str(tmp_path / "m"), "--name", "tiny-test"]) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx", "vocab.json"}
    assert manifest["metrics"]["parity_fp32_max_abs_diff"] < 1e-3
    assert manifest["frame_stride_samples"] == 320
    assert manifest["receptive_field_samples"] == 400
    assert not list(tmp_path.glob(".export-*"))  # staging folder gone

    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    samples = audio.decode(SAMPLES / "clip01.wav", 16000, 60)
    processor = Wav2Vec2Processor.from_pretrained(checkpoint)
    model = Wav2Vec2ForCTC.from_pretrained(checkpoint).eval()
    inputs = processor(samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        reference = model(inputs.input_values).logits[0].numpy()
    served = Recognizer.load(tmp_path / "m", variant="fp32")
    assert np.abs(served.logits(samples) - reference).max() < 1e-3
    expected = processor.batch_decode(reference.argmax(-1)[None, :])[0]
    assert served.transcribe(samples).text == expected


def test_the_bundled_tiny_model_is_what_the_export_script_makes(checkpoint: Path, tmp_path: Path) -> None:
    export_checkpoint(str(checkpoint), tmp_path / "again", ExportOptions(name="tr-tiny-random"))
    samples = audio.decode(SAMPLES / "clip02.flac", 16000, 60)
    bundled = Recognizer.load(TINY_MODEL, variant="fp32").logits(samples)
    rebuilt = Recognizer.load(tmp_path / "again", variant="fp32").logits(samples)
    assert np.abs(bundled - rebuilt).max() < 1e-4
    assert (TINY_MODEL / "vocab.json").read_text() == (tmp_path / "again" / "vocab.json").read_text()


def test_int8_only_ships_just_the_quantised_model(checkpoint: Path, tmp_path: Path) -> None:
    assert export_main([str(checkpoint), "--out", str(tmp_path / "m"), "--int8-only"]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "model.int8.onnx", "vocab.json"]
    assert Recognizer.load(tmp_path / "m", variant="fp32").manifest.variants() == ["int8"]


def test_a_checkpoint_without_a_ctc_head_is_refused(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    Wav2Vec2Model(
        Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(32,) * 7
        )
    ).save_pretrained(tmp_path / "base")
    with pytest.raises(ExportError, match="with a CTC head"):
        export_checkpoint(str(tmp_path / "base"), tmp_path / "out", ExportOptions(name="x"))
    assert not (tmp_path / "out").exists()


def test_a_vocabulary_that_does_not_match_the_head_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    broken = Path(shutil.copytree(checkpoint, tmp_path / "broken"))
    vocab = json.loads((broken / "vocab.json").read_text())
    vocab["ğğ"] = len(vocab)
    (broken / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    with pytest.raises(ExportError, match="vocabulary has 40 tokens but the model's CTC head has 39"):
        export_checkpoint(str(broken), tmp_path / "out", ExportOptions(name="x"))


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read a model config" in capsys.readouterr().err


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("conv_bias", [True, False])
def test_the_time_major_feature_encoder_computes_the_convolutional_one(norm: str, conv_bias: bool) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from export.time_major import TimeMajorFeatureEncoder

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(24, 32, 32, 32, 32, 48, 48),
        feat_extract_norm=norm,
        conv_bias=conv_bias,
    )
    encoder = Wav2Vec2Model(config).eval().feature_extractor
    for layer in encoder.modules():  # random norm affines too, so a swapped weight or bias would show
        if isinstance(layer, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
            torch.nn.init.normal_(layer.weight)
            torch.nn.init.normal_(layer.bias)
    rewritten = TimeMajorFeatureEncoder(encoder).eval()
    for samples in (400, 401, 719, 16000, 16003):  # the receptive field, and lengths the strides do not divide
        x = torch.randn(2, samples)
        with torch.no_grad():
            expected, got = encoder(x), rewritten(x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5), (samples, (got - expected).abs().max())


def test_the_export_quantises_the_feature_encoder_but_its_first_layer(checkpoint: Path, tmp_path: Path) -> None:
    import onnx

    export_checkpoint(str(checkpoint), tmp_path / "tm", ExportOptions(name="tm"))
    fp32 = onnx.load(str(tmp_path / "tm" / "model.onnx")).graph.node
    int8 = onnx.load(str(tmp_path / "tm" / "model.int8.onnx")).graph.node
    assert [n.name for n in fp32 if n.op_type == "Conv"] == ["/wav2vec2/encoder/pos_conv_embed/conv/Conv"]
    assert not [n for n in fp32 if n.op_type == "Transpose" and "feature_extractor" in n.name]
    feature_products = {n.name: n.op_type for n in int8 if "feature_extractor" in n.name and "MatMul" in n.op_type}
    assert [op for name, op in feature_products.items() if "conv_layers.0/" in name] == ["MatMul"]
    quantised = [name for name, op in feature_products.items() if op != "MatMul"]
    assert len(quantised) == 6, feature_products
    manifest = json.loads((tmp_path / "tm" / "manifest.json").read_text())
    assert manifest["source"]["feature_encoder"] == "time-major MatMul"
    assert manifest["source"]["float_nodes"] == ["/wav2vec2/feature_extractor/conv_layers.0/linear/MatMul"]

    assert export_main([str(checkpoint), "--out", str(tmp_path / "conv"), "--conv-features"]) == 0
    conv = onnx.load(str(tmp_path / "conv" / "model.int8.onnx")).graph.node
    assert len([n for n in conv if n.op_type == "Conv"]) == 8  # seven feature layers and the positional one
    samples = audio.decode(SAMPLES / "clip01.wav", 16000, 60)
    fast, plain = (Recognizer.load(tmp_path / name, variant="fp32").logits(samples) for name in ("tm", "conv"))
    assert np.abs(fast - plain).max() < 1e-4


def test_a_checkpoint_rebuilt_from_an_int8_folder_exports_the_same_model(checkpoint: Path, tmp_path: Path) -> None:
    import importlib.util

    from stt_common.settings import REPO_ROOT

    spec = importlib.util.spec_from_file_location("rebuild", REPO_ROOT / "scripts" / "checkpoint_from_onnx.py")
    assert spec
    assert spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    export_checkpoint(str(checkpoint), tmp_path / "int8", ExportOptions(name="x", keep_fp32=False))
    rebuilt = script.rebuild(tmp_path / "int8", "tiny", tmp_path / "rebuilt")
    export_checkpoint(str(rebuilt), tmp_path / "again", ExportOptions(name="x", keep_fp32=False))
    samples = audio.decode(SAMPLES / "clip01.wav", 16000, 60)
    first, second = (Recognizer.load(tmp_path / name, variant="int8").logits(samples) for name in ("int8", "again"))
    assert np.abs(first - second).max() < 1e-4  # dequantised weights quantise back to the same integers


def test_frame_geometry_of_the_xlsr_architecture() -> None:
    from transformers import Wav2Vec2Config

    assert frame_geometry(Wav2Vec2Config()) == (320, 400)


def test_a_model_past_two_gigabytes_keeps_its_weights_in_one_file_beside_the_graph(
    checkpoint: Path, tmp_path: Path
) -> None:
    """Past protobuf's 2 GB the exporter writes every weight to a file of its own: the folder gets one
    `model.onnx.data` instead, listed and verified like the graph (shown here on a small model written
    the way the exporter writes a large one)."""
    import onnx

    from export.onnx_export import _one_file_or_two
    from stt_common.errors import ModelError
    from stt_common.model_folder import file_entry, read_manifest, write_manifest

    export_checkpoint(str(checkpoint), tmp_path / "m", ExportOptions(name="x"))
    scattered = tmp_path / "scattered"
    scattered.mkdir()
    graph = onnx.load(str(tmp_path / "m" / "model.onnx"))
    onnx.save(
        graph,
        str(scattered / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )
    assert len(list(scattered.iterdir())) > 10  # a file per weight
    folder = tmp_path / "m"
    (folder / "model.onnx").unlink()
    _one_file_or_two(scattered / "model.onnx", folder / "model.onnx")
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("model.onnx")) == [
        "model.onnx",
        "model.onnx.data",
    ]
    assert (folder / "model.onnx").stat().st_size < (folder / "model.onnx.data").stat().st_size
    manifest = read_manifest(folder)
    manifest.files["model.onnx"] = file_entry(folder / "model.onnx")
    manifest.files["model.onnx.data"] = file_entry(folder / "model.onnx.data")
    write_manifest(folder, manifest)
    samples = audio.decode(SAMPLES / "clip01.wav", 16000, 60)
    served = Recognizer.load(folder, variant="fp32").logits(samples)
    assert np.abs(served - Recognizer.load(TINY_MODEL, variant="fp32").logits(samples)).max() < 1e-4
    with (folder / "model.onnx.data").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0\1\2\3")
    with pytest.raises(ModelError, match=r"model\.onnx\.data does not match"):
        Recognizer.load(folder, variant="fp32")


@pytest.mark.parametrize("family", ["wav2vec2-conformer", "wav2vec2-bert"])
def test_the_time_major_convolution_module_computes_the_conformers_one(family: str) -> None:
    from transformers import AutoConfig, AutoModel

    from export.conformer import TimeMajorConvolutionModule

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        family, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    layer = AutoModel.from_config(config).eval().encoder.layers[0]
    module = layer.conv_module
    for norm in module.modules():  # random affines and running statistics, so a swapped one would show
        if isinstance(norm, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.normal_(norm.bias)
        if isinstance(norm, torch.nn.BatchNorm1d):
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 2.0)
    rewritten = TimeMajorConvolutionModule(module).eval()
    x = torch.randn(2, 57, 32)
    with torch.no_grad():
        assert torch.allclose(rewritten(x), module(x), atol=1e-5)
        if family == "wav2vec2-bert":  # padded frames are zeroed before the depthwise convolution
            mask = torch.ones(2, 57, dtype=torch.long)
            mask[1, 40:] = 0
            assert torch.allclose(rewritten(x, mask), module(x, mask), atol=1e-5)


def test_the_relative_key_bias_is_transformers_one() -> None:
    from transformers import Wav2Vec2BertConfig
    from transformers.models.wav2vec2_bert import modeling_wav2vec2_bert as bert

    from export.conformer import relative_key_bias

    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(
        hidden_size=32, num_attention_heads=2, left_max_position_embeddings=5, right_max_position_embeddings=3
    )
    attention = bert.Wav2Vec2BertSelfAttention(config).eval()
    for frames in (1, 4, 30):  # shorter than both clamps, and far longer
        query, key = torch.randn(2, 2, frames, 16), torch.randn(2, 2, frames, 16)
        expected_query, expected = bert._apply_relative_key_position_encoding(attention, query, key)
        got_query, got = relative_key_bias(attention, query, key)
        assert got.shape == expected.shape == (2, 2, frames, frames)
        assert torch.equal(got_query, expected_query)
        assert torch.allclose(got, expected, atol=1e-5)


def test_large_float_weights_are_stored_as_int8_and_still_compute(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.quantize import store_weights_int8

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((16, 8, 5)).astype(np.float32) * rng.uniform(0.01, 3, (16, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, None])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.standard_normal((1, 8, 50)).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    assert store_weights_int8(path, min_elements=100) == ["w"]  # the bias (16 values) stays fp32
    stored = {t.name: t.data_type for t in onnx.load(str(path)).graph.initializer}
    assert stored == {
        "w_int8": TensorProto.INT8,
        "w_scale": TensorProto.FLOAT,
        "w_zero": TensorProto.INT8,
        "b": TensorProto.FLOAT,
    }
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # Each weight is off by at most half its channel's step (max |w| / 254); the outputs follow.
    assert 0 < np.abs(after - before).max() < 0.02 * np.abs(before).max()
