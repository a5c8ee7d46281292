"""The seed's benchmark table, reproduced: size and CPU latency of PyTorch eager, ONNX fp32 and ONNX INT8
for 5 s of audio, measured in one process so the ratios compare; INT8 latency for 1/5/15/30 s; peak
memory of a process serving the INT8 model.

    python bench/model_report.py --checkpoint CKPT --model-dir MODEL [--checkpoint CKPT2 --model-dir MODEL2]

CKPT is the Hugging Face checkpoint the model folder was exported from. Prints tables, writes JSON,
and replaces the model-report section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import cpu_model, replace_section  # bench/report.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- model-report:start -->", "<!-- model-report:end -->"


def timed(fn: Any, runs: int) -> dict[str, Any]:
    return timed_together({"": fn}, runs, rounds=1)[""]


def timed_together(fns: dict[str, Any], runs: int, rounds: int = 5) -> dict[str, dict[str, Any]]:
    """Time each function `runs` times over `rounds` rounds, so a noisy neighbour in one stretch of time
    does not land on one variant only. Each variant's block starts with an untimed run: switching
    between runtimes (each with its own thread pool, spinning a while after a run) costs the first
    run after the switch, and allocation and kernel selection happen on a first run too."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000)
    return {
        name: {
            "median_ms": float(np.median(v)),
            "min_ms": float(np.min(v)),
            "mean_ms": float(np.mean(v)),
            "runs_ms": [round(x, 1) for x in v],
        }
        for name, v in samples.items()
    }


def mb(path: Path) -> float:
    """A checkpoint folder's weights, or an ONNX file with its weights file when it has one (past 2 GB)."""
    files = [path, path.with_name(path.name + ".data")] if path.is_file() else list(path.glob("*.safetensors"))
    return sum(p.stat().st_size for p in files if p.is_file()) / 1e6


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def peak_memory_mb(model_dir: Path, threads: int) -> float:
    """Peak RSS of a fresh process that loads the INT8 model and transcribes 30 s (as a worker would).
    Read from VmHWM, the new process's own high-water mark: ru_maxrss carries the parent's peak across
    vfork and exec (Linux keeps it in the signal struct), so a large benchmark process would show through."""
    code = (
        f"import numpy as np, sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from worker.recognizer import Recognizer\n"
        f"r = Recognizer.load({str(model_dir)!r}, variant='int8', threads={threads}); r.warm_up(5)\n"
        "r.transcribe(np.random.default_rng(0).standard_normal(30 * 16000).astype(np.float32) * 0.1)\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def report_one(checkpoint: Path, model_dir: Path, runs: int, threads: int) -> dict[str, Any]:
    import torch
    from onnxruntime.quantization import quantize_dynamic
    from transformers import Wav2Vec2ForCTC

    from export.onnx_export import export_fp32
    from export.quantize import quantize_int8

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    five = (rng.standard_normal(5 * 16000) * 0.1).astype(np.float32)
    model = Wav2Vec2ForCTC.from_pretrained(checkpoint).eval()
    fp32_path, int8_path = model_dir / "model.onnx", model_dir / "model.int8.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        # The graph as torch.onnx exports the modules as written (Conv1d feature encoder), for comparison.
        conv_fp32 = Path(tmp) / "model.conv.onnx"
        export_fp32(model, conv_fp32, opset=17, time_major_features=False)
        conv_int8 = Path(tmp) / "model.conv.int8.onnx"
        quantize_int8(conv_fp32, conv_int8, ("MatMul",))
        conv_default_int8 = Path(tmp) / "model.conv.int8-default.onnx"
        quantize_dynamic(str(conv_fp32), str(conv_default_int8))  # onnxruntime's default op set (Conv too)
        paths = {
            "ONNX fp32": fp32_path,
            "ONNX INT8": int8_path,
            "ONNX fp32, Conv1d feature encoder": conv_fp32,
            "ONNX INT8 (MatMul only), Conv1d feature encoder": conv_int8,
            "ONNX INT8 (onnxruntime default ops), Conv1d feature encoder": conv_default_int8,
        }
        sessions = {name: ort_session(path, threads) for name, path in paths.items()}
        sizes = {"PyTorch": mb(checkpoint), **{name: mb(path) for name, path in paths.items()}}
        x = torch.from_numpy(five[None, :])

        def pytorch() -> None:
            with torch.inference_mode():
                model(x)

        rows = timed_together(
            {
                "PyTorch": pytorch,
                **{
                    name: (lambda s=session: s.run(None, {"input_values": five[None, :]}))
                    for name, session in sessions.items()
                },
            },
            runs,
        )
        by_length = {}
        for seconds in (1, 5, 15, 30):
            clip = (rng.standard_normal(seconds * 16000) * 0.1).astype(np.float32)
            result = timed(
                lambda c=clip: sessions["ONNX INT8"].run(None, {"input_values": c[None, :]}), max(3, runs // 2)
            )
            by_length[seconds] = {**result, "rtf": result["median_ms"] / 1000 / seconds}
    base = rows["PyTorch"]["median_ms"]
    table = {
        name: {
            "size_mb": round(sizes[name], 1),
            **{k: round(v, 1) for k, v in r.items() if not isinstance(v, list)},
            "runs_ms": r["runs_ms"],
            "speedup": round(base / r["median_ms"], 2),
        }
        for name, r in rows.items()
    }
    manifest = json.loads((model_dir / "manifest.json").read_text())
    return {
        "checkpoint": str(checkpoint),
        "model_dir": str(model_dir),
        "threads": threads,
        "runs": runs,
        "feature_encoder": manifest["source"].get("feature_encoder", "Conv1d"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "five_seconds": table,
        "int8_by_length": by_length,
        "int8_peak_rss_mb": round(peak_memory_mb(model_dir, threads), 1),
    }


def markdown(results: list[dict[str, Any]], machine: str, command: str) -> str:
    lines = [START, f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d')}. Command: `{command}`", ""]
    for r in results:
        name = Path(r["model_dir"]).name
        lines += [
            f"**{name}** ({r['parameters'] / 1e6:.1f} M parameters, {r['threads']} threads, "
            f"median of {r['runs']} runs of 5 s of audio in 5 rounds, the variants taking turns, "
            "each turn after one untimed run; "
            f"the model folder's feature encoder: {r['feature_encoder']})",
            "",
            "| model | size (MB) | latency median (ms) | min (ms) | speedup |",
            "|---|---|---|---|---|",
        ]
        for row_name, row in r["five_seconds"].items():
            lines.append(
                f"| {row_name} | {row['size_mb']} | {row['median_ms']} | {row['min_ms']} | {row['speedup']}x |"
            )
        lengths = ", ".join(
            f"{s} s: {v['median_ms']:.1f} ms (RTF {v['rtf']:.4f})" for s, v in r["int8_by_length"].items()
        )
        lines += [
            "",
            f"INT8 by length: {lengths}. Peak RSS of a process serving it (loaded, warmed, "
            f"30 s transcribed): {r['int8_peak_rss_mb']} MB.",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--model-dir", type=Path, action="append", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "model_report.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()
    results = [report_one(c, m, args.runs, args.threads) for c, m in zip(args.checkpoint, args.model_dir, strict=True)]
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    for r in results:
        print(f"\n{Path(r['model_dir']).name}: 5 s of audio, {r['threads']} threads, {r['runs']} runs")
        print(f"{'model':60s} {'size MB':>9s} {'median ms':>10s} {'min ms':>8s} {'speedup':>8s}")
        for name, row in r["five_seconds"].items():
            print(
                f"{name:60s} {row['size_mb']:9.1f} {row['median_ms']:10.1f} {row['min_ms']:8.1f} {row['speedup']:7.2f}x"
            )
        for s, v in r["int8_by_length"].items():
            print(f"  INT8 {s:>2d} s: {v['median_ms']:8.1f} ms  RTF {v['rtf']:.4f}")
        print(f"  INT8 serving process peak RSS: {r['int8_peak_rss_mb']} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    if not args.no_docs:
        replace_section(START, END, markdown(results, machine, "python " + " ".join(sys.argv)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
