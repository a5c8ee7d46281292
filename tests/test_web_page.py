"""The web page at `/`, in a real browser (Debian's Chromium driven by Playwright) against a real stack:
api, Celery worker, Redis, SQLite and the bundled model.

Chromium and Playwright are needed: without them these tests are skipped, unless STT_REQUIRE_BROWSER=1
(CI sets it, and .ci/run installs Chromium). STT_WRITE_SCREENSHOTS=1 saves the screenshots the README
shows to docs/images/.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
from fastapi.testclient import TestClient
from redis import Redis

from api.main import create_app
from stt_common.api_keys import create as create_key
from stt_common.db import session_scope
from tests.services import CeleryWorker, RedisServer, ThreadedServer
from tests.stack import SAMPLES, make_stack, migrated_sqlite

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("STT_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "images"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's closed network refuses Google's hosts
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra has it
    if REQUIRED:
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)
if CHROMIUM is None:
    if REQUIRED:
        raise RuntimeError("STT_REQUIRE_BROWSER=1 but no chromium: apt-get install chromium")
    pytest.skip("no chromium (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page and the API of a stack whose worker transcribes with the bundled model (keys off)."""
    tmp = tmp_path_factory.mktemp("web")
    Redis.from_url(redis_server.url).flushall()  # our own server: no messages left from other tests
    stack = make_stack(migrated_sqlite(tmp), redis_server.url, tmp)
    worker = CeleryWorker(stack.env, tmp / "worker.log").start()
    server = ThreadedServer(create_app(stack.settings))
    try:
        yield server.url
    finally:
        server.stop()
        worker.stop()


@pytest.fixture
def page(browser: Browser, served: str) -> Iterator[Page]:
    context = browser.new_context(locale="tr-TR", viewport={"width": 1100, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    opened.goto(served)
    # Content-Security-Policy violations are reported to the page: keep them for the check below.
    opened.evaluate(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI))"
    )
    yield opened
    assert opened.evaluate("window.__violations") == []
    assert problems == []
    context.close()


def job_row(page: Page, filename: str) -> Any:
    return page.locator("#job-list li", has=page.locator(".name", has_text=filename)).first


def sample_payload(sample: str, name: str | None = None) -> dict[str, Any]:
    """A sample as Playwright's in-memory file (paths and in-memory files cannot be mixed)."""
    kind = mimetypes.guess_type(sample)[0] or "application/octet-stream"
    return {"name": name or sample, "mimeType": kind, "buffer": (SAMPLES / sample).read_bytes()}


def upload(page: Page, files: list[Any]) -> None:
    page.set_input_files("#file-input", files)
    page.click("#start")


def open_succeeded(page: Page, filename: str) -> None:
    row = job_row(page, filename)
    expect(row.locator(".badge.succeeded")).to_be_visible(timeout=90_000)
    row.get_by_role("button", name="Aç").click()
    expect(page.locator("#text .w").first).to_be_visible()


def wait_until(page: Page, condition: str, seconds: float) -> None:
    """Poll a JavaScript condition (Playwright's wait_for_function evaluates strings in the page, which
    the page's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(condition):
        assert time.monotonic() < deadline, f"not true after {seconds} s: {condition}"
        page.wait_for_timeout(100)


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("STT_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_a_sample_uploads_and_its_transcript_plays_along(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#upload-heading")).to_have_text("Yükle")  # Turkish for a Turkish browser
    upload(page, [str(SAMPLES / "clip01.wav")])
    expect(page.locator("#pending li .muted")).to_have_text("kabul edildi")
    screenshot(page, "web-upload.png")
    open_succeeded(page, "clip01.wav")
    job_id = job_row(page, "clip01.wav").get_attribute("data-job")
    result = page.evaluate(f"fetch('/v1/jobs/{job_id}').then(r => r.json())")["result"]
    words = page.locator("#text .w")
    assert words.count() == len(result["words"]) > 3
    assert words.all_text_contents() == [w["word"] for w in result["words"]]

    # Clicking a word seeks the audio to its start.
    third = result["words"][3]
    words.nth(3).click()
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(third["start"], abs=0.01)
    expect(words.nth(3)).to_have_class(re.compile(r"\bcurrent\b"))

    # Playing moves the highlight on to later words.
    page.evaluate("document.getElementById('player').currentTime = 0; document.getElementById('player').play()")
    current = "Number(document.querySelector('#text .w.current')?.dataset.index ?? -1)"
    wait_until(page, f"{current} === 0", 5)
    wait_until(page, f"{current} === {len(result['words']) - 1}", 20)  # through to the last word
    page.evaluate("document.getElementById('player').pause()")
    screenshot(page, "web-transcript.png")

    # Keyboard: J goes back five seconds.
    page.evaluate("document.getElementById('player').currentTime = 3")
    page.locator("body").press("j")
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(0, abs=0.01)

    # Low-confidence marking follows the threshold; search finds words with Turkish case rules.
    page.locator("#threshold").fill("1")
    assert page.locator("#text .w.low").count() == sum(w["confidence"] < 1 for w in result["words"])
    page.locator("#threshold").fill("0")
    assert page.locator("#text .w.low").count() == 0
    first = result["words"][0]["word"]
    page.locator("#search").fill(first.replace("i", "İ").replace("ı", "I").upper())
    assert page.locator("#text .w.hit").count() == sum(first in w["word"] for w in result["words"])

    # The SRT download parses, and says what the API says.
    with page.expect_download() as info:
        page.click("[data-download=srt]")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == "clip01.srt"
    cues = list(srt.parse(saved.read_text(encoding="utf-8")))
    assert " ".join(c.content.replace("\n", " ") for c in cues).split() == result["text"].split()


def test_three_files_make_a_batch_and_a_refused_one_shows_its_error(page: Page) -> None:
    files = [
        sample_payload("clip02.flac"),
        {"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"these are my meeting notes, not audio\n" * 10},
        sample_payload("clip05.wav"),
    ]
    upload(page, files)
    pending = page.locator("#pending li")
    expect(pending.nth(1).locator(".error")).to_contain_text("not a recognised audio")
    expect(pending.nth(0).locator(".muted")).to_have_text("kabul edildi")
    expect(pending.nth(2).locator(".muted")).to_have_text("kabul edildi")
    card = page.locator("#batches .batch").first
    expect(card.locator(".badge.completed")).to_be_visible(timeout=90_000)
    expect(card.locator(".counts")).to_contain_text("Tamamlandı: 2")
    expect(card.locator(".counts")).to_contain_text("Başarısız: 1")
    screenshot(page, "web-jobs.png")

    page.click("#language")  # and in English
    expect(page.locator("#upload-heading")).to_have_text("Upload")
    expect(card.locator(".counts")).to_contain_text("Succeeded: 2")


def test_a_filename_with_markup_is_shown_as_text_and_runs_nothing(page: Page) -> None:
    name = "<img src=x onerror=window.__xss=1>.wav"
    upload(page, [sample_payload("clip01.wav", name)])
    expect(page.locator("#pending li .name")).to_have_text(name)
    row = job_row(page, name)
    expect(row.locator(".name")).to_have_text(name)
    open_succeeded(page, name)
    expect(page.locator("#transcript-heading")).to_have_text(name)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img").count() == 0


def test_with_keys_on_the_page_asks_for_one_and_says_when_it_is_wrong(
    browser: Browser, redis_server: RedisServer, tmp_path: Path
) -> None:
    stack = make_stack(migrated_sqlite(tmp_path), redis_server.url, tmp_path, auth_enabled=True)
    server = ThreadedServer(create_app(stack.settings))
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(server.url)
        expect(page.locator("#notice")).to_have_text(re.compile("needs an API key"))
        expect(page.locator("#key-panel")).to_be_visible()
        page.fill("#key-input", "stt_aaaaaaaa_" + "x" * 43)
        page.click("#key-form button[type=submit]")
        expect(page.locator("#notice")).to_have_text(re.compile("was refused"))
        with session_scope(stack.session_factory) as session:
            key = create_key(session, "acme").plaintext
        page.fill("#key-input", key)
        page.click("#key-form button[type=submit]")
        expect(page.locator("#jobs-empty")).to_be_visible()
        expect(page.locator("#notice")).not_to_have_class(re.compile(r"\bbad\b"))
        assert key not in page.url
        page.click("#key-toggle")
        page.click("#key-forget")
        assert page.evaluate("localStorage.getItem('stt.apiKey')") is None
    finally:
        context.close()
        server.stop()


def test_the_page_is_served_with_a_strict_policy_and_etags(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(migrated_sqlite(tmp_path), redis_server.url, tmp_path, auth_enabled=True)
    with TestClient(create_app(stack.settings)) as client:
        for path in ("/", "/web/app.js", "/web/style.css"):
            r = client.get(path)  # no key needed for the page itself
            assert r.status_code == 200, path
            policy = r.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "'unsafe-inline'" not in policy
            assert "frame-ancestors 'none'" in policy
            assert r.headers["x-content-type-options"] == "nosniff"
            again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
        html = client.get("/").text
        assert "<script>" not in html
        assert re.search(r"<[^>]*\son\w+\s*=", html) is None  # no inline event handlers
        assert client.get("/web/nothing.js").status_code == 404
        assert client.get("/docs").status_code == 200  # the OpenAPI docs stay where they were


def test_the_page_fits_a_phone_and_every_control_has_a_name(browser: Browser, served: str) -> None:
    context = browser.new_context(locale="tr-TR", viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(served)
        expect(page.locator("#upload-heading")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")  # no sideways scroll
        unnamed = page.evaluate(
            "[...document.querySelectorAll('input, select, button')].filter((el) => !(el.labels?.length"
            " || el.getAttribute('aria-label') || el.textContent.trim())).map((el) => el.id || el.outerHTML)"
        )
        assert unnamed == []
        # Without a mouse: Tab reaches the file picker's label-button and the start button in order.
        order = []
        for _ in range(12):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        assert order.index("key-toggle") < order.index("file-input") < order.index("model") < order.index("webhook")
    finally:
        context.close()


def test_each_file_of_a_batch_upload_shows_its_own_progress(page: Page) -> None:
    cdp = page.context.new_cdp_session(page)  # a slow uplink: about 2 s for the two files below
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 120_000},
    )
    upload(page, [sample_payload("clip01.wav", "first.wav"), sample_payload("clip05.wav", "second.wav")])
    bars = page.locator("#pending li progress")
    seen = []
    for _ in range(60):
        seen.append(tuple(float(bars.nth(i).evaluate("el => el.value")) for i in range(2)))
        if seen[-1] == (1.0, 1.0):
            break
        page.wait_for_timeout(100)
    # The first file finishes while the second is still on its way, and the second starts from zero.
    assert any(first == 1.0 and 0 <= second < 0.9 for first, second in seen), seen
    assert any(0 < first < 1 for first, _ in seen), seen
    expect(page.locator("#pending li .muted").first).to_have_text("kabul edildi", timeout=30_000)
