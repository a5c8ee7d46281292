"""Every channel count the probe accepts decodes to the same mono audio, in a child process, so that a
decoder crash (PyAV used to segfault on 8 or more planar channels) fails this test instead of pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from stt_common import audio
from tests.audio_files import wav_with_layout

RATE = 16000
SECONDS = 0.5
TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(RATE * SECONDS)) / RATE)).astype(np.float32)

DECODE_EACH = """
import json, sys
import numpy as np
from stt_common import audio
from tests.audio_files import wav_with_layout
for path in sys.argv[1:]:
    print(path, flush=True)  # the last line printed names the file that crashed, if one does
    info = audio.probe(path)
    samples = audio.decode(path, 16000, 60.0)
    print(json.dumps({"path": path, "channels": info.channels, "samples": len(samples),
                      "peak": float(np.abs(samples).max())}), flush=True)
"""


def test_every_accepted_channel_count_decodes_to_the_mean_of_its_channels(tmp_path: Path) -> None:
    paths = []
    for channels in range(1, audio.MAX_CHANNELS + 1):  # same tone on every channel: the mean is the tone
        paths.append(tmp_path / f"{channels:02d}-channels.wav")
        sf.write(paths[-1], np.tile(TONE, (channels, 1)).T, RATE, subtype="PCM_16")
    for layout in ("5.1", "7.1"):
        paths.append(tmp_path / f"layout-{layout}.wav")
        paths[-1].write_bytes(wav_with_layout(layout, TONE, RATE))
    paths.append(tmp_path / "eight.flac")
    sf.write(paths[-1], np.tile(TONE, (8, 1)).T, RATE, format="FLAC")
    paths.append(tmp_path / "thirty-two.ogg")
    sf.write(paths[-1], np.tile(TONE, (32, 1)).T, RATE, format="OGG", subtype="VORBIS")

    child = subprocess.run(
        [sys.executable, "-c", DECODE_EACH, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    crashed_on = child.stdout.strip().splitlines()[-1:] or ["(nothing)"]
    assert child.returncode == 0, f"the decoder died ({child.returncode}) on {crashed_on[0]}: {child.stderr[-2000:]}"
    results = {Path(r["path"]).name: r for r in map(json.loads, child.stdout.splitlines()[1::2])}
    assert len(results) == len(paths)
    assert results["layout-7.1.wav"]["channels"] == 8
    assert results["32-channels.wav"]["channels"] == 32
    for name, result in results.items():
        assert abs(result["samples"] - len(TONE)) <= 0.05 * len(TONE), name
        assert abs(result["peak"] - 0.3) < 0.03, (name, result["peak"])  # averaged, neither summed nor dropped


def test_averaging_interleaved_channels_keeps_each_channel_in_its_place(tmp_path: Path) -> None:
    """Channel k holds the tone times k: the mean is the tone times (n + 1) / 2, a sum would be n (n + 1) / 2
    and a transposed reshape would scramble it."""
    channels = 9
    path = tmp_path / "scaled.wav"
    sf.write(path, np.stack([TONE * (k + 1) / channels for k in range(channels)], axis=1), RATE, subtype="FLOAT")
    decoded = audio.decode(path, RATE, 60.0)
    expected = TONE * (channels + 1) / 2 / channels
    np.testing.assert_allclose(decoded[: len(expected)], expected, atol=1e-4)
