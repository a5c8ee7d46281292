"""Long audio: real-time factor and peak worker memory for 1, 10 and 60 minutes, and the measurement
behind how long audio is cut (at pauses, in windows, or not at all).

Each length runs in a fresh process that loads and warms the model as a worker does and transcribes a
FLAC file (held-out sample sentences with pauses) through the worker's streaming path; its peak RSS
is that process's own high-water mark (VmHWM). The same process times the bare engine on 5 s of audio before and after
its file, and the RTF is also given divided by that engine RTF: this shared machine's speed moves
under sustained load by more than the target (docs/BENCHMARKS.md). Lengths run in the order given, so
`--minutes 60 10 1` measures every length on a machine already under load. Targets (issue 3): RTF
constant within 10% across lengths; peak memory at 60 minutes at most 1.5x that at 1 minute.

    python bench/long_audio.py --model models/tr-espeak-small [--model build/models/xlsr-large-random] \
        [--minutes 60 10 1] [--repeats 1]
    python bench/long_audio.py --model models/tr-espeak-small --compare-cutting   # needs espeak-ng

Prints tables, writes bench/results/long_audio.json and the long-audio section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from report import cpu_model, replace_section  # bench/report.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- long-audio:start -->", "<!-- long-audio:end -->"
RATE = 16000

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from worker.recognizer import Recognizer
import numpy as np
r = Recognizer.load({model!r}, variant="int8", threads={threads}); r.warm_up(5)
probe = (np.random.default_rng(1).standard_normal(5 * r.manifest.sample_rate) * 0.1).astype(np.float32)
def engine_ms():  # the bare engine on 5 s of audio, median of 3: how fast the machine is right now
    times = []
    for _ in range(3):
        t = time.perf_counter(); r.logits(probe); times.append(time.perf_counter() - t)
    return sorted(times)[1] * 1000
def hwm_mb():  # this process's own peak RSS (ru_maxrss would carry the parent's across vfork and exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
before = engine_ms()
usage = resource.getrusage(resource.RUSAGE_SELF)
loaded, cpu0 = hwm_mb(), usage.ru_utime + usage.ru_stime
t0 = time.perf_counter()
timed = r.transcribe_file({path!r}, max_seconds=1e6, expected_seconds={seconds})
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu, peak = usage.ru_utime + usage.ru_stime - cpu0, hwm_mb()
print(json.dumps({{"wall_s": wall, "cpu_s": cpu, "decode_s": timed.decode_s, "audio_s": timed.transcript.duration_s,
                  "words": len(timed.transcript.words), "rss_loaded_mb": loaded, "rss_peak_mb": peak,
                  "engine_before_ms": before, "engine_after_ms": engine_ms()}}))
"""


def recording(minutes: float, folder: Path) -> Path:
    """The bundled sample sentences in random order with 0.3-1.2 s pauses, as a FLAC file."""
    from stt_common import audio

    clips = [audio.decode(p, RATE, 60) for p in sorted((REPO / "samples").glob("clip*"))]
    rng = random.Random(0)
    path = folder / f"{minutes:g}min.flac"
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 1, format="FLAC") as out:
        written = 0
        while written < total:
            piece = np.concatenate([rng.choice(clips), np.zeros(int(rng.uniform(0.3, 1.2) * RATE), np.float32)])
            piece = piece[: total - written]
            out.write(piece)
            written += len(piece)
    return path


def measure(model: Path, path: Path, seconds: float, threads: int, repeats: int) -> dict[str, Any]:
    """The median run of `repeats`, each in a fresh process (this machine is shared: one run can be
    slowed by a neighbour); peak RSS is the largest of them."""
    code = CHILD.format(repo=str(REPO), model=str(model), threads=threads, path=str(path), seconds=seconds)
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        run["rtf"], run["cpu_per_audio_s"] = run["wall_s"] / run["audio_s"], run["cpu_s"] / run["audio_s"]
        # The machine's speed changes under sustained load: the same process's bare engine on 5 s of
        # audio, before and after the file, is the yardstick the RTF is divided by.
        engine_rtf = (run["engine_before_ms"] + run["engine_after_ms"]) / 2 / 1000 / 5
        run["rtf_per_engine_rtf"] = run["rtf"] / engine_rtf
        runs.append(run)
    runs.sort(key=lambda r: r["rtf"])
    result: dict[str, Any] = dict(runs[len(runs) // 2])
    result["rss_peak_mb"] = max(r["rss_peak_mb"] for r in runs)
    result["rtf_runs"] = [round(r["rtf"], 5) for r in runs]
    return result


def spread(lengths: dict[str, dict[str, Any]], key: str) -> float:
    """(largest - smallest) / smallest of one measure across the lengths."""
    values = [m[key] for m in lengths.values()]
    return float((max(values) - min(values)) / min(values))


def compare_cutting(model: Path, threads: int, minutes: float) -> dict[str, Any]:
    """WER on a recording of held-out corpus sentences: each sentence alone, windows only, pauses first."""
    import jiwer

    from training.corpus import CorpusConfig, plan, render, select_sentences
    from worker.recognizer import Recognizer

    config = CorpusConfig(out=Path("unused"))
    items = [i for i in plan(config, select_sentences(config)) if i.split == "test"]
    alone = Recognizer.load(model, threads=threads, pause_seconds=0, window_seconds=60)
    rng = random.Random(7)
    pieces, references, one_by_one = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index, item in enumerate(items):
            record = render((item, Path(tmp), index))
            samples, _ = sf.read(Path(tmp) / str(record["audio"]), dtype="float32")
            one_by_one.append(alone.transcribe(samples).text)
            references.append(item.text)
            pieces += [samples, np.zeros(int(rng.uniform(0.6, 1.5) * RATE), np.float32)]
            if sum(map(len, pieces)) >= minutes * 60 * RATE:
                break
        path = Path(tmp) / "recording.flac"
        sf.write(path, np.concatenate(pieces), RATE)
        reference = " ".join(references)
        rows = {"each sentence alone": {"wer": jiwer.wer(reference, " ".join(one_by_one))}}
        variants = {
            "windows only (30 s, 4 s overlap)": {"pause_seconds": 0.0},
            "windows only (8 s, 2 s overlap)": {"pause_seconds": 0.0, "window_seconds": 8, "overlap_seconds": 2},
            "pauses (0.3 s), then windows (default)": {},
            "pauses (0.5 s), then windows": {"pause_seconds": 0.5},
        }
        for name, options in variants.items():
            recognizer = Recognizer.load(model, threads=threads, **options)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            text = recognizer.transcribe_file(path, max_seconds=1e6).transcript.text
            rows[name] = {"wer": jiwer.wer(reference, text), "seconds": time.perf_counter() - t0}
    return {"minutes": minutes, "sentences": len(references), "rows": rows}


def markdown(report: dict[str, Any], command: str) -> str:
    lines = [START, f"Machine: {report['machine']}. Date: {report['date']}. Command: `{command}`", ""]
    for name, r in report["models"].items():
        order = " → ".join(f"{m} min" for m in r["order"])
        runs = (
            "one run each" if report["repeats"] == 1 else f"median of {report['repeats']} runs up to 10 min, one above"
        )
        lines += [
            f"**{name}** (INT8, {report['threads']} threads; each length in a fresh process, measured {order}, {runs})",
            "",
            "| audio | real-time factor (wall) | CPU s per audio s | decode share | peak RSS (MB) "
            "| RSS after load+warm-up (MB) | engine, 5 s, before / after (ms) | RTF ÷ engine RTF |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for minutes, m in r["lengths"].items():
            lines.append(
                f"| {minutes} min | {m['rtf']:.4f} | {m['cpu_per_audio_s']:.4f} | "
                f"{m['decode_s'] / m['wall_s']:.0%} | {m['rss_peak_mb']:.0f} | {m['rss_loaded_mb']:.0f} | "
                f"{m['engine_before_ms']:.0f} / {m['engine_after_ms']:.0f} | {m['rtf_per_engine_rtf']:.3f} |"
            )
        lines += [
            "",
            f"Spread across lengths: wall RTF {r['rtf_spread']:.1%}, CPU time per audio second "
            f"{r['cpu_spread']:.1%}, RTF ÷ engine RTF {r['relative_spread']:.1%} (target within 10%); "
            f"peak RSS at {r['longest']} min / at {r['shortest']} min: {r['rss_ratio']:.2f}x "
            "(target at most 1.5x).",
            "",
        ]
    if report.get("cutting"):
        c = report["cutting"]
        lines += [
            f"**Cutting long audio** ({c['minutes']} min of {c['sentences']} held-out corpus sentences with "
            "0.6–1.5 s pauses, bundled model)",
            "",
            "| method | WER | seconds |",
            "|---|---|---|",
        ]
        for name, row in c["rows"].items():
            seconds = f"{row['seconds']:.1f}" if "seconds" in row else "–"
            lines.append(f"| {name} | {row['wer']:.3f} | {seconds} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--repeats", type=int, default=3, help="Runs per length up to 10 minutes (longer: one); the median is reported."
    )
    parser.add_argument("--compare-cutting", action="store_true", help="Also measure WER by cutting method.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "long_audio.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "repeats": args.repeats,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = {m: recording(m, Path(tmp)) for m in args.minutes}
        for model in args.model:
            # In the order given: `--minutes 60 10 1` runs every length on a machine already under load.
            measured = {
                f"{m:g}": measure(model, files[m], m * 60, args.threads, args.repeats if m <= 10 else 1)
                for m in args.minutes
            }
            lengths = {f"{m:g}": measured[f"{m:g}"] for m in sorted(args.minutes)}
            shortest, longest = f"{min(args.minutes):g}", f"{max(args.minutes):g}"
            report["models"][model.name] = {
                "lengths": lengths,
                "rtf_spread": spread(lengths, "rtf"),
                "cpu_spread": spread(lengths, "cpu_per_audio_s"),
                "relative_spread": spread(lengths, "rtf_per_engine_rtf"),
                "rss_ratio": lengths[longest]["rss_peak_mb"] / lengths[shortest]["rss_peak_mb"],
                "shortest": shortest,
                "longest": longest,
                "order": [f"{m:g}" for m in args.minutes],
            }
            print(f"\n{model.name}: INT8, {args.threads} threads, measured in the order {args.minutes}")
            print(
                f"{'audio':>8s} {'RTF':>8s} {'CPU/s':>8s} {'decode':>7s} {'peak RSS MB':>12s} {'loaded MB':>10s} "
                f"{'engine 5 s ms before/after':>27s} {'RTF/engine RTF':>15s}"
            )
            for minutes, m in lengths.items():
                print(
                    f"{minutes + ' min':>8s} {m['rtf']:8.4f} {m['cpu_per_audio_s']:8.4f} "
                    f"{m['decode_s'] / m['wall_s']:7.0%} {m['rss_peak_mb']:12.0f} {m['rss_loaded_mb']:10.0f} "
                    f"{m['engine_before_ms']:13.0f} / {m['engine_after_ms']:<11.0f} {m['rtf_per_engine_rtf']:15.3f}"
                )
            r = report["models"][model.name]
            print(
                f"spread: RTF {r['rtf_spread']:.1%}, CPU {r['cpu_spread']:.1%}, RTF/engine RTF "
                f"{r['relative_spread']:.1%}; peak RSS ratio {r['rss_ratio']:.2f}x"
            )
    if args.compare_cutting:
        report["cutting"] = compare_cutting(args.model[0], args.threads, 10)
        print(f"\ncutting, {report['cutting']['sentences']} sentences:")
        for name, row in report["cutting"]["rows"].items():
            print(f"  {name:45s} WER {row['wer']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    if not args.no_docs:
        replace_section(START, END, markdown(report, "python " + " ".join(sys.argv)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
