"""The formatting stage measured (issue 19): punctuation and capitals on held-out text, numbers and
apostrophes on a written set, and end to end on held-out speech with the bundled model.

    python bench/formatting.py [--formatter models/formatter-tr] [--clips 100]

1. Text: the 700 treebank sentences the speech corpus holds out (never in the tagger's training), written as
   the recognizer writes them and run as one stream through the formatter's windows. F1 of period, comma and
   question mark after each word, and of capitalised words (sentence starts and proper nouns).
2. Numbers and apostrophes: bench/formatting_cases.tsv (spoken form, written form); a sentence matches when
   its words holding a digit, % or an apostrophe are exactly the expected ones.
3. Speech: held-out test sentences spoken by espeak-ng (voices seen in training), transcribed by the bundled
   model on one thread: WER of the recognizer's text against the normalised reference, and case- and
   punctuation-sensitive WER of the formatted text against the written sentence; the time formatting adds
   to a job's processing; the RSS the formatter adds to a worker (loaded and run once).

Prints a table, writes JSON, replaces the formatting section of docs/BENCHMARKS.md and the folder's card.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from report import cpu_model, replace_section

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- formatting:start -->", "<!-- formatting:end -->"
CASES_FILE = Path(__file__).with_name("formatting_cases.tsv")


def _marked(text: str) -> list[str]:
    return [w.strip(".,?!") for w in text.split() if any(c.isdigit() or c in "%'" for c in w)]


def number_scores(formatter: Any) -> dict[str, Any]:
    from stt_common.transcript import Word

    rows = [line.split("\t") for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if "\t" in line]
    misses = []
    for spoken, expected in rows:
        words = [Word(w, float(i), float(i), 1.0) for i, w in enumerate(spoken.split())]
        got = " ".join(w.word for w in formatter.format_words(words))
        if _marked(got) != _marked(expected):
            misses.append({"spoken": spoken, "expected": expected, "got": got})
    return {"sentences": len(rows), "exact": round(1 - len(misses) / len(rows), 3), "misses": misses}


def speech_scores(formatter: Any, sentences: list[str], clips: int, model: Path) -> dict[str, Any]:
    import jiwer
    import soxr

    from training.corpus import SEEN_VOICES
    from training.speak import speak
    from training.text import normalize
    from worker.recognizer import Recognizer

    recognizer = Recognizer.load(model, threads=1)
    recognizer.warm_up(2.0)
    rng = random.Random(0)
    refs, written, raw, formatted = [], [], [], []
    transcribe_s = format_s = 0.0
    for sentence in sentences[:clips]:
        samples, rate = speak(sentence, voice=rng.choice(SEEN_VOICES), rate=rng.randint(125, 195))
        samples = soxr.resample(samples, rate, 16000).astype("float32")
        started = time.perf_counter()
        transcript = recognizer.transcribe(samples)
        transcribe_s += time.perf_counter() - started
        started = time.perf_counter()
        done = formatter.format(transcript)
        format_s += time.perf_counter() - started
        refs.append(normalize(sentence))
        written.append(" ".join(sentence.split()))
        raw.append(transcript.text or "-")
        formatted.append(done.text or "-")
    return {
        "clips": len(refs),
        "wer_plain": round(jiwer.wer(refs, raw), 4),
        "wer_written_raw": round(jiwer.wer(written, raw), 4),
        "wer_written_formatted": round(jiwer.wer(written, formatted), 4),
        "transcribe_s": round(transcribe_s, 3),
        "format_s": round(format_s, 3),
        "format_share": round(format_s / transcribe_s, 4),
        "examples": [
            {"written": w, "raw": r, "formatted": f} for w, r, f in list(zip(written, raw, formatted, strict=True))[:5]
        ],
    }


def rss_added_mb(folder: Path, sentences: list[str]) -> float:
    """Peak RSS of this process before and after loading the formatter and formatting the held-out text
    (after the recognizer ran, as in a worker)."""
    from stt_common.transcript import Word
    from worker.formatting import Formatter

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    formatter = Formatter.load(folder)
    words = [Word(w, 0.0, 0.0, 1.0) for s in sentences for w in s.lower().split()]
    formatter.format_words(words)
    return round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1)


def markdown(result: dict[str, Any]) -> str:
    t, n, s = result["text"], result["numbers"], result["speech"]
    return "\n".join(
        [
            START,
            f"Machine: {result['machine']}, Python {result['python']}. Date: {result['date']}. "
            f"Command: `{result['command']}`",
            "",
            f"Held-out text: {t['sentences']} sentences, {t['words']} words, as one stream. Speech: {s['clips']} "
            "held-out test sentences spoken by espeak-ng, the bundled model, one thread.",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| period F1 ({t['period_count']} periods) | {t['period_f1']} | ≥ 0.90 |",
            f"| question mark F1 ({t['question_count']}) | {t['question_f1']} | ≥ 0.90 |",
            f"| comma F1 ({t['comma_count']}) | {t['comma_f1']} | ≥ 0.70 |",
            f"| capitalisation F1 ({t['capital_count']} capitalised words) | {t['capital_f1']} | ≥ 0.90 |",
            f"| numbers and apostrophes, exact ({n['sentences']} sentences) | {n['exact']:.1%} | ≥ 95% |",
            f"| WER, recognizer text vs normalised reference | {s['wer_plain']} | |",
            f"| WER with case and punctuation, recognizer text vs written | {s['wer_written_raw']} | |",
            f"| WER with case and punctuation, formatted vs written | {s['wer_written_formatted']} | |",
            f"| formatting time / transcription time | {s['format_share']:.1%} | ≤ 10% |",
            f"| RSS the formatter adds | {result['rss_added_mb']} MB | ≤ 50 MB |",
            END,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formatter", type=Path, default=REPO / "models" / "formatter-tr")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "tr-espeak-small")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "formatting.json")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args()

    from training.corpus import CorpusConfig, select_sentences
    from training.punctuation import split_sentences, text_scores
    from worker.formatting import Formatter

    _, held_out = split_sentences()
    rss = rss_added_mb(args.formatter, held_out)
    formatter = Formatter.load(args.formatter)
    config = CorpusConfig(out=Path("."))
    test = [spoken for spoken, _ in select_sentences(config)][config.validation_sentences :][: config.test_sentences]
    result: dict[str, Any] = {
        "machine": f"{cpu_model()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/formatting.py" + (f" --clips {args.clips}" if args.clips != 100 else ""),
        "text": text_scores(formatter, held_out),
        "numbers": number_scores(formatter),
        "speech": speech_scores(formatter, test, args.clips, args.model),
        "rss_added_mb": rss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    table = markdown(result)
    print(table)
    for miss in result["numbers"]["misses"]:
        print(f"number miss: {miss['spoken']!r} → {miss['got']!r} (expected {miss['expected']!r})")
    if not args.no_doc:
        replace_section(START, END, table)
        card = args.formatter / "README.md"
        if card.is_file():
            replace_section(START, END, table, doc=card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
