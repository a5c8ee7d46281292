// The transcript view: the audio plays, the word being spoken lights up, a click on a word seeks there,
// low-confidence words are marked, search finds words (Turkish case rules), downloads in four formats.

import { ApiError, getBlob, getJson } from "./api.js";
import { locale, t } from "./i18n.js";
import { $, notify, saveBlob } from "./ui.js";

let job = null; // the job shown: its id, filename and result
let words = []; // {word, start, end, confidence, el}
let currentIndex = -1;
let audioUrl = null;
let frame = 0;

export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function basename(name) {
  return (name || "transcript").replace(/\.[^./\\]+$/, "");
}

export async function openTranscript(id) {
  const loaded = await getJson(`/v1/jobs/${encodeURIComponent(id)}`);
  close();
  job = loaded;
  $("transcript").hidden = false;
  $("transcript-heading").textContent = loaded.audio.filename || loaded.id;
  render(loaded.result);
  $("transcript").scrollIntoView({ block: "start" });
  $("transcript-close").focus();
  try {
    const blob = await getBlob(`/v1/jobs/${encodeURIComponent(id)}/audio`);
    audioUrl = URL.createObjectURL(blob);
    $("player").src = audioUrl;
  } catch (exc) {
    if (!(exc instanceof ApiError)) throw exc;
    $("audio-note").hidden = false;
    $("audio-note").textContent = exc.code === "audio_not_ready" ? t("audioNotReady") : t("audioGone");
    if (exc.status === 0) notify(exc.message, true);
  }
}

export function close() {
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  if (audioUrl) URL.revokeObjectURL(audioUrl);
  audioUrl = null;
  job = null;
  words = [];
  currentIndex = -1;
  $("text").replaceChildren();
  $("search").value = "";
  $("search-count").textContent = "";
  $("audio-note").hidden = true;
  $("transcript").hidden = true;
}

// Words grouped by segment, each segment led by its time (a button: the keyboard's way to seek).
function render(result) {
  const text = $("text");
  const segments = result.segments.length ? result.segments : [{ start: 0, end: result.duration_s || 0 }];
  words = result.words.map((w) => ({ ...w }));
  let next = 0;
  const nodes = [];
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    const block = document.createElement("p");
    block.className = "segment";
    const at = document.createElement("button");
    at.type = "button";
    at.className = "at";
    at.textContent = clock(segment.start);
    at.dataset.seek = String(segment.start);
    block.append(at);
    while (next < words.length && (last || words[next].start < segment.end)) {
      const word = words[next];
      const span = document.createElement("span");
      span.className = "w";
      span.textContent = word.word; // text, never markup
      span.dataset.index = String(next);
      word.el = span;
      block.append(span, " ");
      next += 1;
    }
    nodes.push(block);
  });
  if (!words.length) {
    const empty = document.createElement("p");
    empty.className = "muted";
    empty.textContent = t("noText");
    nodes.push(empty);
  }
  text.replaceChildren(...nodes);
  markLowConfidence();
}

function markLowConfidence() {
  const threshold = Number($("threshold").value);
  $("threshold-value").textContent = threshold.toLocaleString(locale(), { minimumFractionDigits: 2 });
  for (const word of words) word.el.classList.toggle("low", word.confidence < threshold);
}

// The word being spoken at `time`: the last whose start is not after it, while it lasts.
function wordAt(time) {
  let lo = 0;
  let hi = words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start <= time) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found >= 0 && time < words[found].end + 0.25 ? found : -1;
}

function highlight() {
  const index = wordAt($("player").currentTime);
  if (index === currentIndex) return;
  if (currentIndex >= 0) {
    words[currentIndex].el.classList.remove("current");
    words[currentIndex].el.removeAttribute("aria-current");
  }
  currentIndex = index;
  if (index >= 0) {
    const el = words[index].el;
    el.classList.add("current");
    el.setAttribute("aria-current", "true");
    el.scrollIntoView({ block: "nearest" });
  }
}

function follow() {
  highlight();
  if (!$("player").paused) frame = requestAnimationFrame(follow);
}

function seek(seconds) {
  const player = $("player");
  player.currentTime = Math.max(0, seconds);
  highlight();
}

function search() {
  const query = $("search").value.trim().toLocaleLowerCase("tr");
  let hits = 0;
  for (const word of words) {
    const hit = query !== "" && word.word.toLocaleLowerCase("tr").includes(query);
    word.el.classList.toggle("hit", hit);
    hits += hit ? 1 : 0;
  }
  $("search-count").textContent = query ? t("matches", { n: hits }) : "";
  const first = words.find((w) => w.el.classList.contains("hit"));
  if (first) first.el.scrollIntoView({ block: "nearest" });
}

async function download(format) {
  if (!job) return;
  try {
    const blob = await getBlob(`/v1/jobs/${encodeURIComponent(job.id)}/transcript?format=${format}`);
    saveBlob(blob, `${basename(job.audio.filename)}.${format}`);
  } catch (exc) {
    notify(exc.message, true);
  }
}

function typing(target) {
  // The audio element's own controls take their keys themselves.
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA|AUDIO)$/.test(target.tagName));
}

export function setUpTranscript() {
  const player = $("player");
  player.addEventListener("play", () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(follow);
  });
  player.addEventListener("seeked", highlight);
  player.addEventListener("timeupdate", highlight);
  $("text").addEventListener("click", (event) => {
    const target = event.target.closest("[data-index], [data-seek]");
    if (!target) return;
    seek(target.dataset.seek !== undefined ? Number(target.dataset.seek) : words[Number(target.dataset.index)].start);
  });
  $("threshold").addEventListener("input", markLowConfidence);
  $("search").addEventListener("input", search);
  $("transcript-close").addEventListener("click", close);
  for (const button of document.querySelectorAll("[data-download]")) {
    button.addEventListener("click", () => download(button.dataset.download));
  }
  $("copy").addEventListener("click", async () => {
    if (!job) return;
    try {
      await navigator.clipboard.writeText(job.result.text);
      notify(t("copied"));
    } catch (exc) {
      notify(String(exc), true);
    }
  });
  document.addEventListener("keydown", (event) => {
    if ($("transcript").hidden || typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === " " || key === "k") {
      if (event.target instanceof HTMLButtonElement && key === " ") return; // a focused button's own Space
      if (player.paused) player.play();
      else player.pause();
    } else if (key === "j" || key === "arrowleft") seek(player.currentTime - 5);
    else if (key === "l" || key === "arrowright") seek(player.currentTime + 5);
    else return;
    event.preventDefault();
  });
}
