"""The web page's weight and speed in Chromium against a private stack (its own redis-server, SQLite,
uvicorn and worker processes):

- page weight: bytes of HTML, JavaScript and CSS the first load transfers (uncompressed);
- time from opening the page to the job list shown, with 20 jobs in the list;
- the transcript view of a 60-minute recording with about 8,000 words: time to show it, how closely
  the highlight follows playback (the lit word against the word at the audio's current time, sampled
  while it plays), long tasks while it plays, and the time from a click on a word to the audio seeked.

    python bench/web_page.py [--words 8000] [--runs 5]

Targets (issue 18): weight at most 150 kB, list shown within 300 ms, a word click seeks within 100 ms.
Needs Chromium (`apt-get install chromium`) and Playwright (the dev extra). Prints a table, writes JSON
and replaces the web-page section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import bisect
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from report import PrivateStack, cpu_model, free_port, private_env, replace_section, write_results

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- web-page:start -->", "<!-- web-page:end -->"
WEIGHT_KB, LIST_MS, SEEK_MS = 150, 300, 100
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
WORDS = [
    "bugün",
    "toplantıda",
    "bütçe",
    "planı",
    "ödeme",
    "mutabakatı",
    "ve",
    "yeni",
    "müşteriler",
    "hakkında",
    "konuştuk",
]


def add_jobs(env: dict[str, str], count: int, words: int, minutes: float) -> str:
    """`count` short succeeded jobs, then one of `minutes` of (silent) audio with `words` timed words, as a
    worker leaves them; returns the long one's id."""
    from stt_common import jobs
    from stt_common.db import make_engine, make_session_factory, session_scope
    from stt_common.models import Job
    from stt_common.settings import Settings
    from stt_common.storage import audio_key, open_storage
    from stt_common.transcript import Transcript, Word, segment

    settings = Settings(
        _env_file=None,
        database_url=env["STT_DATABASE_URL"],
        storage_dir=Path(env["STT_STORAGE_DIR"]),
        redis_url=env["STT_REDIS_URL"],
    )
    factory, storage = make_session_factory(make_engine(settings.database_url)), open_storage(settings)

    def finished(name: str, seconds: float, count_words: int) -> str:
        audio = io.BytesIO()
        sf.write(audio, np.zeros(int(seconds * 8000), np.int16), 8000, format="FLAC")
        job_id = uuid.uuid4()
        stored = storage.put(audio_key(job_id), io.BytesIO(audio.getvalue()))
        step = seconds / max(count_words, 1)
        timed = [  # confidences 0.3-0.93, so some words are marked
            Word(WORDS[i % len(WORDS)], round(i * step, 2), round((i + 0.8) * step, 2), 0.3 + 0.07 * ((i * 7) % 10))
            for i in range(count_words)
        ]
        text = " ".join(w.word for w in timed)
        transcript = Transcript(text=text, words=timed, segments=segment(timed), duration_s=seconds)
        with session_scope(factory) as session:
            session.add(
                Job(
                    id=job_id,
                    tenant="default",
                    model="tr-espeak-small",
                    audio_key=stored.key,
                    audio_sha256=stored.sha256,
                    audio_bytes=stored.bytes,
                    audio_format="flac",
                    filename=name,
                    duration_s=seconds,
                )
            )
        with session_scope(factory) as session:
            attempt = jobs.claim(session, job_id, 60, max_attempts=3)
            assert attempt is not None
            assert jobs.complete(session, job_id, attempt, transcript, 1.0)
        return str(job_id)

    for i in range(count):
        finished(f"kayıt-{i:02d}.flac", 5, 12)
    return finished("toplantı-60-dakika.flac", minutes * 60, words)


def page_file_sizes(sizes: dict[str, int]) -> Any:
    """A response handler noting the size of each of the page's own files (not the API's answers)."""

    def note(response: Any) -> None:
        if "/v1/" not in response.url:
            sizes[response.url] = len(response.body())

    return note


def measure(base_url: str, long_job: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        weights, cold_ms, warm_ms = [], [], []
        for _ in range(runs):
            context = browser.new_context(locale="tr-TR")
            # The moment the first row is in the page, noted by the page itself (a Playwright wait would add
            # its own round trips): an observer installed before any of the page's scripts run.
            context.add_init_script(
                "new MutationObserver((_, o) => { if (document.querySelector('#job-list li')) {"
                " window.__listShown = performance.now(); o.disconnect(); } })"
                ".observe(document, {childList: true, subtree: true});"
            )
            page = context.new_page()
            sizes: dict[str, int] = {}
            page.on("response", page_file_sizes(sizes))
            page.goto(base_url)  # a fresh browser context: nothing cached
            page.locator("#job-list li").first.wait_for()
            cold_ms.append(page.evaluate("window.__listShown"))  # since the navigation started
            weights.append(sum(sizes.values()))
            page.goto(base_url)  # opened again in the same browser: the files revalidated by ETag (304)
            page.locator("#job-list li").first.wait_for()
            warm_ms.append(page.evaluate("window.__listShown"))
            context.close()
        print(f"page loads: cold {cold_ms}, warm {warm_ms}", flush=True)
        context = browser.new_context(locale="tr-TR", viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(base_url)
        row = page.locator(f"#job-list li[data-job='{long_job}']")
        started = time.perf_counter()
        row.get_by_role("button").first.click()
        page.locator("#text .w").last.wait_for()
        while page.evaluate("document.getElementById('player').readyState") < 1:
            page.wait_for_timeout(20)
        open_ms = (time.perf_counter() - started) * 1000
        words = page.locator("#text .w").count()
        print(f"transcript of {words} words shown in {open_ms:.0f} ms", flush=True)

        page.evaluate(
            "window.__long = 0; new PerformanceObserver((l) => { window.__long += l.getEntries().length })"
            ".observe({type: 'longtask'});"
            "const p = document.getElementById('player'); p.currentTime = 1800; p.play();"
        )
        page.wait_for_timeout(500)
        starts = [
            w["start"] for w in page.evaluate(f"fetch('/v1/jobs/{long_job}').then(r => r.json())")["result"]["words"]
        ]
        agree, samples = 0, 0
        for _ in range(40):  # four seconds of playback, sampled every 100 ms
            lit, now = page.evaluate(
                "[Number(document.querySelector('#text .w.current')?.dataset.index ?? -1),"
                " document.getElementById('player').currentTime]"
            )
            expected = bisect.bisect_right(starts, now) - 1  # the last word begun by then
            samples += 1
            agree += int(abs(lit - expected) <= 1)
            page.wait_for_timeout(100)
        long_tasks = page.evaluate("window.__long")
        print(f"highlight {agree}/{samples}, long tasks {long_tasks}", flush=True)
        page.evaluate("document.getElementById('player').pause()")

        seeks = []
        for index in np.linspace(100, words - 100, 10).astype(int):
            page.evaluate(  # (a statement: evaluating the promise itself would wait for it)
                "(() => { window.__seeked = new Promise((done) => { const p = document.getElementById('player');"
                " document.addEventListener('click', () => { const clicked = performance.now();"
                " p.addEventListener('seeked', () => done(performance.now() - clicked), {once: true}); },"
                " {once: true, capture: true}); }); })()"
            )
            page.locator(f"#text .w[data-index='{index}']").click()
            seeks.append(page.evaluate("window.__seeked"))
        browser.close()
    return {
        "page_weight_bytes": int(statistics.median(weights)),
        "list_shown_ms": round(statistics.median(cold_ms), 1),
        "list_shown_ms_max": round(max(cold_ms), 1),
        "list_shown_again_ms": round(statistics.median(warm_ms), 1),
        "list_shown_again_ms_max": round(max(warm_ms), 1),
        "transcript_words": words,
        "transcript_shown_ms": round(open_ms, 1),
        "highlight_agreement": round(agree / samples, 3),
        "long_tasks_while_playing": long_tasks,
        "seek_ms_median": round(statistics.median(seeks), 1),
        "seek_ms_max": round(max(seeks), 1),
    }


def rows(r: dict[str, Any], runs: int, minutes: float) -> list[str]:
    """The markdown table: each measure, its value and its target."""
    return [
        "| measure | value | target |",
        "|---|---|---|",
        f"| page weight (HTML + JS + CSS, uncompressed) | {r['page_weight_bytes'] / 1000:.1f} kB | ≤ {WEIGHT_KB} kB |",
        f"| page opened → job list shown, in a fresh browser context (median of {runs}; max) "
        f"| {r['list_shown_ms']} ms; {r['list_shown_ms_max']} ms | ≤ {LIST_MS} ms |",
        f"| the same, opened again in that browser (files revalidated, 304) "
        f"| {r['list_shown_again_ms']} ms; {r['list_shown_again_ms_max']} ms | ≤ {LIST_MS} ms |",
        f"| transcript of {minutes:g} min, {r['transcript_words']} words: shown after a click "
        f"| {r['transcript_shown_ms']} ms | |",
        "| highlight = the word at the audio's time (±1), sampled every 100 ms for 4 s "
        f"| {r['highlight_agreement']:.0%} | |",
        f"| long tasks (> 50 ms) while playing | {r['long_tasks_while_playing']} | |",
        f"| click on a word → audio seeked (median; max of 10) | {r['seek_ms_median']} ms; {r['seek_ms_max']} ms "
        f"| ≤ {SEEK_MS} ms |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=8000)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--runs", type=int, default=5, help="Page loads for weight and list time.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "web_page.json")
    parser.add_argument("--no-docs", action="store_true", help="Do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-web-"))
    redis_port = free_port()
    env = private_env(work, redis_port)
    stack = PrivateStack(work, env, REPO)
    try:
        stack.start(redis_port)
        stack.wait_ready(1)
        long_job = add_jobs(env, 20, args.words, args.minutes)
        result = measure(stack.base_url, long_job, args.runs)
    finally:
        stack.stop()
    shutil.rmtree(work, ignore_errors=True)
    machine = f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = "python " + " ".join(sys.argv)
    table = rows(result, args.runs, args.minutes)
    title = f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d')}. Command: `{command}`"
    write_results(args.out, {"machine": machine, **result}, title, table)
    if not args.no_docs:
        body = "Debian's Chromium (headless) driven by Playwright against a private stack; 20 jobs in the list."
        replace_section(START, END, "\n".join([START, title, "", body, "", *table, END]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
