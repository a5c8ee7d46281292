"""Every CTC family the export takes, at its public base size (random weights: size and speed do not
depend on them): size and 5 s latency of PyTorch eager, ONNX fp32 and ONNX INT8 measured in one
process, INT8 real-time factor through the worker's chunker, and the peak RSS of a process serving it.

    python bench/model_families.py [--family hubert ...] [--runs 6] [--threads 2]

Targets (issue 21): INT8 at least 3x faster than PyTorch eager and at most 30% of the fp32 size. Prints
a table, writes JSON, and replaces the model-families section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from model_report import mb, ort_session, peak_memory_mb, timed_together  # bench/ is on sys.path
from report import cpu_model, replace_section

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- model-families:start -->", "<!-- model-families:end -->"
SPEEDUP_TARGET, SIZE_TARGET = 3.0, 0.30


def random_checkpoint(family: str, out: Path) -> Path:
    """The family's default configuration (its public base model's sizes; w2v-BERT 2.0 has one size)
    with the Turkish vocabulary and a CTC head, randomly initialised."""
    import torch
    from transformers import AutoConfig, AutoModelForCTC, SeamlessM4TFeatureExtractor, Wav2Vec2BertProcessor

    from training.checkpoints import CTC_CLASSES, FAMILY_DEFAULTS, build_processor

    processor = build_processor(out, [])
    config = AutoConfig.for_model(
        family,
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        architectures=[CTC_CLASSES[family]],
        **FAMILY_DEFAULTS.get(family, {}),
    )
    torch.manual_seed(0)
    AutoModelForCTC.from_config(config).eval().save_pretrained(out)
    if family == "wav2vec2-bert":
        processor = Wav2Vec2BertProcessor(
            feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=processor.tokenizer
        )
    processor.save_pretrained(out)
    return out


def speech(seconds: int) -> np.ndarray:
    """The bundled samples, end to end, repeated to `seconds`: real pauses for the chunker to cut at."""
    from stt_common import audio

    clips = [audio.decode(p, 16000, 60) for p in sorted((REPO / "samples").glob("clip0*"))]
    joined = np.concatenate(clips)
    return np.resize(joined, seconds * 16000).astype(np.float32)


def int8_ops(path: Path, inputs: np.ndarray, threads: int, runs: int = 5) -> dict[str, float]:
    """Milliseconds per run by operator type in the INT8 graph (onnxruntime's profiler), largest first."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(path.parent / "profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: inputs}
    session.run(None, feed)  # allocation and kernel choice: profiled, but in every variant alike
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + event["dur"] / 1000 / (runs + 1)
    return {op: round(ms, 1) for op, ms in sorted(by_op.items(), key=lambda item: -item[1])}


def report_family(family: str, root: Path, runs: int, threads: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCTC

    from export.onnx_export import ExportOptions, export_checkpoint
    from worker.features import fbank_features
    from worker.recognizer import Recognizer

    torch.set_num_threads(threads)
    started = time.perf_counter()
    checkpoint = random_checkpoint(family, root / "checkpoint" / family)
    folder = root / "models" / family
    manifest = export_checkpoint(str(checkpoint), folder, ExportOptions(name=family))
    export_s = time.perf_counter() - started
    model = AutoModelForCTC.from_pretrained(checkpoint).eval()
    five = speech(5)
    inputs = fbank_features(five, manifest.features)[None] if manifest.features else five[None, :]
    x = torch.from_numpy(inputs)
    sessions = {
        name: ort_session(folder / f, threads) for name, f in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))
    }

    def pytorch() -> None:
        with torch.inference_mode():
            model(x)

    feed = {sessions["fp32"].get_inputs()[0].name: inputs}

    def onnx(session: Any) -> Callable[[], None]:
        return lambda: session.run(None, feed)

    rows = timed_together({"PyTorch": pytorch, **{name: onnx(s) for name, s in sessions.items()}}, runs)
    recognizer = Recognizer.load(folder, variant="int8", threads=threads, language_model=False)
    minute = speech(60)
    recognizer.transcribe(minute[: 5 * 16000])  # warm
    t0 = time.perf_counter()
    recognizer.transcribe(minute)
    rtf = (time.perf_counter() - t0) / 60
    sizes = {
        "PyTorch": mb(checkpoint),
        "fp32": mb(folder / "model.onnx"),
        "int8": mb(folder / "model.int8.onnx"),
    }
    base = rows["PyTorch"]["median_ms"]
    return {
        "family": family,
        "parameters": sum(p.numel() for p in model.parameters()),
        "export_s": round(export_s, 1),
        "parity_fp32_max_abs_diff": manifest.metrics["parity_fp32_max_abs_diff"],
        "five_seconds": {
            name: {
                "size_mb": round(sizes[name], 1),
                "median_ms": round(r["median_ms"], 1),
                "min_ms": round(r["min_ms"], 1),
                "speedup": round(base / r["median_ms"], 2),
            }
            for name, r in rows.items()
        },
        "int8_size_of_fp32": round(sizes["int8"] / sizes["fp32"], 3),
        "int8_rtf_chunked_60s": round(rtf, 4),
        "int8_peak_rss_mb": round(peak_memory_mb(folder, threads), 1),
        "int8_ms_by_op": int8_ops(folder / "model.int8.onnx", inputs, threads),
    }


def markdown(results: list[dict[str, Any]], machine: str, command: str, threads: int, runs: int) -> str:
    lines = [
        START,
        f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d')}. Command: `{command}`",
        "",
        f"Random weights in each family's default (public base) configuration, the Turkish vocabulary; {threads} "
        f"threads; 5 s of speech, median of {runs} runs in rounds, the variants taking turns. RTF: INT8 through the "
        "worker's chunker on 60 s of speech (greedy). Peak RSS: a fresh process that loads the INT8 model, warms "
        f"it and transcribes 30 s. Targets: INT8 at least {SPEEDUP_TARGET:g}x PyTorch eager, at most "
        f"{SIZE_TARGET:.0%} of the fp32 size.",
        "",
        "| family | parameters | PyTorch ms | fp32 ms | INT8 ms | INT8 speedup | fp32 MB | INT8 MB | INT8/fp32 size "
        "| INT8 RTF | peak RSS MB | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["five_seconds"]
        met = t["int8"]["speedup"] >= SPEEDUP_TARGET and r["int8_size_of_fp32"] <= SIZE_TARGET
        lines.append(
            f"| {r['family']} | {r['parameters'] / 1e6:.1f} M | {t['PyTorch']['median_ms']} | {t['fp32']['median_ms']} "
            f"| {t['int8']['median_ms']} | {t['int8']['speedup']}x | {t['fp32']['size_mb']} | {t['int8']['size_mb']} "
            f"| {r['int8_size_of_fp32']:.0%} | {r['int8_rtf_chunked_60s']} | {r['int8_peak_rss_mb']} "
            f"| {'met' if met else 'missed'} |"
        )
    lines += [
        "",
        "Where the INT8 graph spends its time (onnxruntime's profiler, 5 s, ms per run, the five largest):",
        "",
    ]
    for r in results:
        top = ", ".join(f"{op} {ms}" for op, ms in list(r["int8_ms_by_op"].items())[:5])
        lines.append(f"- {r['family']}: {top}")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    from training.checkpoints import CTC_CLASSES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", choices=sorted(CTC_CLASSES), help="Default: every family.")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "model_families.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()
    results = []
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    for family in args.family or sorted(CTC_CLASSES):
        with tempfile.TemporaryDirectory(prefix=f"family-{family}-") as tmp:  # ~1 GB for a base model
            r = report_family(family, Path(tmp), args.runs, args.threads)
        t = r["five_seconds"]
        print(
            f"{family:20s} {r['parameters'] / 1e6:6.1f} M  PyTorch {t['PyTorch']['median_ms']:7.1f} ms  fp32 "
            f"{t['fp32']['median_ms']:7.1f} ms  INT8 {t['int8']['median_ms']:7.1f} ms ({t['int8']['speedup']}x)  "
            f"size {t['fp32']['size_mb']:.0f} -> {t['int8']['size_mb']:.0f} MB ({r['int8_size_of_fp32']:.0%})  "
            f"RTF {r['int8_rtf_chunked_60s']}  RSS {r['int8_peak_rss_mb']} MB",
            flush=True,
        )
        results.append(r)
        args.out.parent.mkdir(parents=True, exist_ok=True)  # after each family: a later failure keeps these
        args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    if not args.no_docs:
        command = "python " + " ".join(sys.argv)
        replace_section(START, END, markdown(results, machine, command, args.threads, args.runs))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
