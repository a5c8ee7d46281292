"""What every benchmark script shares: the machine's name and writing its section of docs/BENCHMARKS.md."""

from __future__ import annotations

import platform
from pathlib import Path

BENCHMARKS_DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def replace_section(start: str, end: str, section: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Put `section` (which begins with `start` and ends with `end`) in place of the old one, or append it."""
    text = doc.read_text()
    text = text.split(start)[0] + section + text.split(end)[1] if start in text else text + "\n" + section + "\n"
    doc.write_text(text)
