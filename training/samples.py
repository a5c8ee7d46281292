"""Pick the demo clips from a corpus's held-out test splits and write them in several formats and
sample rates (so the demo also exercises decoding and resampling), with their reference texts.

    python -m training.samples --corpus build/corpus --out samples
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import soundfile as sf
import soxr

from training.data import load_audio

# (format, libsndfile subtype, sample rate) for each clip in turn.
FORMATS = [
    ("wav", "PCM_16", 22050),
    ("flac", "PCM_16", 44100),
    ("ogg", "VORBIS", 48000),
    ("mp3", "MPEG_LAYER_III", 16000),
    ("wav", "PCM_16", 16000),
]


def pick(corpus: Path, count: int) -> list[dict[str, object]]:
    """Distinct sentences and voices, 2.5–6 s long; the last clip uses the held-out voice."""
    rows = [json.loads(line) for line in (corpus / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen: list[dict[str, object]] = []
    for row in rows:
        if 2.5 <= row["duration"] <= 6 and all(row["voice"] != c["voice"] for c in chosen):
            chosen.append(row)
        if len(chosen) == count - 1:
            break
    held_out = [json.loads(line) for line in (corpus / "test_heldout_voice.jsonl").read_text().splitlines()]
    used = {c["text"] for c in chosen}
    chosen.append(next(r for r in held_out if r["text"] not in used and 2.5 <= r["duration"] <= 6))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("clip*"):
        old.unlink()
    references = {}
    for index, (row, (fmt, subtype, rate)) in enumerate(zip(pick(args.corpus, len(FORMATS)), FORMATS, strict=True)):
        samples = soxr.resample(load_audio(row["audio"], str(args.corpus)), 16000, rate)
        name = f"clip{index + 1:02d}.{fmt}"
        sf.write(args.out / name, samples, rate, subtype=subtype)
        references[name] = {
            "text": row["text"],
            "spoken": row["spoken"],
            "voice": row["voice"],
            "held_out_voice": row["split"] == "test_heldout_voice",
        }
        print(f"{name}: {row['duration']} s, {row['voice']}: {row['text']}")
    (args.out / "references.json").write_text(
        json.dumps(references, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
