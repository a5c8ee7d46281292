"""Render Turkish text to speech with espeak-ng (the synthetic-data source; nothing is downloaded).

python -m training.speak --out samples --formats wav,flac,ogg,mp3 "Merhaba dünya." ...
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


class EspeakMissing(RuntimeError):
    pass


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise EspeakMissing("espeak-ng is not installed; install it with `apt-get install espeak-ng`")
    return binary


def speak(text: str, *, voice: str = "tr", rate: int = 150, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate (espeak-ng renders at 22.05 kHz)."""
    binary = espeak_binary()
    # The text goes through stdin: as an argument, a sentence starting with "-" would read as a flag.
    wav = subprocess.run(
        [binary, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout"],
        input=text.encode("utf-8"),
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    if not wav:
        raise RuntimeError(f"espeak-ng produced no audio for voice {voice!r}")
    samples, sample_rate = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, sample_rate


SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--formats", default="wav", help="Comma-separated: " + ",".join(SUBTYPES))
    parser.add_argument("--voice", default="tr")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    formats = args.formats.split(",")
    references = {}
    for index, text in enumerate(args.texts):
        samples, rate = speak(text, voice=args.voice)
        fmt = formats[index % len(formats)]
        name = f"clip{index + 1:02d}.{fmt}"
        sf.write(args.out / name, samples, rate, subtype=SUBTYPES[fmt])
        references[name] = text
        print(f"{name}: {len(samples) / rate:.2f} s  {text}")
    (args.out / "references.json").write_text(
        json.dumps(references, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
