// The page: the key, uploads (one file → a job, several → a batch), the live job list, batches.

import { ApiError, forgetKey, getBlob, getJson, remove, saveKey, savedKey, upload } from "./api.js";
import { apply, locale, switchLanguage, t } from "./i18n.js";
import { clock, openTranscript, setUpTranscript } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["queued", "processing"]);
const BATCHES_KEY = "stt.batches";
const POLL_FASTEST = 2000;
const POLL_SLOWEST = 30000;

let pending = []; // {file, el, progress, state}
let cursor = null; // the list's next page
let pollDelay = POLL_FASTEST;
let pollTimer = 0;
let lastListing = "";

// ----- notices and the key -----

function notify(message, bad = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("bad", bad);
  notice.hidden = !message;
}

function explain(exc) {
  if (exc instanceof ApiError && exc.code === "missing_api_key") return t("keyNeeded");
  if (exc instanceof ApiError && exc.code === "invalid_api_key") return t("keyWrong");
  if (exc instanceof ApiError && exc.status === 0) return t("serviceDown");
  return exc instanceof ApiError ? `${exc.message} (${exc.code})` : String(exc);
}

function showKeyPanel(open) {
  $("key-panel").hidden = !open;
  $("key-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("key-input").focus();
}

function authFailed(exc) {
  if (exc instanceof ApiError && exc.status === 401) {
    notify(explain(exc), true);
    showKeyPanel(true);
    return true;
  }
  return false;
}

// ----- uploads -----

function addFiles(files) {
  for (const file of files) {
    if (!file.size && !file.type) continue; // a folder entry
    const el = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.webkitRelativePath || file.name;
    const state = document.createElement("span");
    state.className = "muted";
    state.textContent = t("waiting");
    const progress = document.createElement("progress");
    progress.max = 1;
    progress.value = 0;
    const detail = document.createElement("div");
    detail.className = "detail";
    detail.append(progress, state);
    el.append(name, detail);
    $("pending").append(el);
    pending.push({ file, el, progress, state });
  }
  refreshUploadButtons();
}

function refreshUploadButtons() {
  const waiting = pending.some((p) => !p.done);
  $("start").disabled = !waiting;
  $("clear").disabled = pending.length === 0;
}

function markFile(item, ok, message) {
  item.done = true;
  item.progress.value = 1;
  item.state.textContent = ok ? t("accepted") : t("refused");
  if (!ok) {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = message; // the service's message, as text
    item.el.append(error);
  }
}

function options(form) {
  if ($("model").value) form.append("model", $("model").value);
  if ($("webhook").value.trim()) form.append("webhook_url", $("webhook").value.trim());
}

async function startUploads() {
  const items = pending.filter((p) => !p.done);
  if (!items.length) return;
  $("start").disabled = true;
  // The files travel one after another in the request body: each file's bar follows its own share of
  // the bytes sent (the multipart framing, a few hundred bytes a file, spread over them).
  const sizes = items.map((item) => item.file.size);
  const progress = (sent, total) => {
    const scale = sizes.reduce((a, b) => a + b, 0) / total;
    let before = 0;
    items.forEach((item, i) => {
      item.progress.value = sizes[i] ? Math.min(1, Math.max(0, (sent * scale - before) / sizes[i])) : 1;
      before += sizes[i];
    });
  };
  for (const item of items) item.state.textContent = t("uploading");
  try {
    if (items.length === 1) {
      const form = new FormData();
      form.append("file", items[0].file, items[0].file.name);
      options(form);
      await upload("/v1/jobs", form, progress);
      markFile(items[0], true);
    } else {
      const form = new FormData();
      for (const item of items) form.append("files", item.file, item.file.name);
      options(form);
      const batch = await upload("/v1/batches", form, progress);
      for (const entry of batch.items) {
        const item = items[entry.index];
        if (item) markFile(item, entry.status !== "failed", entry.error ? entry.error.message : "");
      }
      rememberBatch(batch.id);
    }
  } catch (exc) {
    if (!authFailed(exc)) {
      for (const item of items) if (!item.done) markFile(item, false, explain(exc));
    } else {
      for (const item of items) item.state.textContent = t("waiting");
    }
  }
  refreshUploadButtons();
  poll(true);
}

// ----- batches -----

function rememberedBatches() {
  try {
    return JSON.parse(localStorage.getItem(BATCHES_KEY) || "[]").filter((id) => typeof id === "string");
  } catch {
    return [];
  }
}

function rememberBatch(id) {
  const ids = [id, ...rememberedBatches().filter((b) => b !== id)].slice(0, 10);
  localStorage.setItem(BATCHES_KEY, JSON.stringify(ids));
}

function forgetBatch(id) {
  localStorage.setItem(BATCHES_KEY, JSON.stringify(rememberedBatches().filter((b) => b !== id)));
}

async function showBatches() {
  const cards = [];
  let active = false;
  for (const id of rememberedBatches()) {
    let batch;
    try {
      batch = await getJson(`/v1/batches/${encodeURIComponent(id)}?items=false`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) forgetBatch(id);
      else if (!authFailed(exc)) notify(explain(exc), true);
      continue;
    }
    active ||= batch.status !== "completed";
    const card = document.createElement("div");
    card.className = "batch";
    card.dataset.batch = batch.id;
    const title = document.createElement("strong");
    title.textContent = t("batch", { id: batch.id.slice(0, 8) });
    const badge = document.createElement("span");
    badge.className = `badge ${batch.status}`;
    badge.textContent = batch.status === "completed" ? t("completed") : t("processing");
    const counts = document.createElement("span");
    counts.className = "counts";
    counts.textContent = Object.entries(batch.counts)
      .filter(([, n]) => n > 0)
      .map(([status, n]) => `${t(status)}: ${n}`)
      .join(" · ");
    const results = document.createElement("button");
    results.type = "button";
    results.textContent = t("results");
    results.addEventListener("click", () => saveResults(batch.id));
    const drop = document.createElement("button");
    drop.type = "button";
    drop.className = "danger";
    drop.textContent = t("delete");
    drop.addEventListener("click", async () => {
      if (!confirm(t("confirmDeleteBatch"))) return;
      await act(() => remove(`/v1/batches/${encodeURIComponent(batch.id)}`));
      forgetBatch(batch.id);
    });
    const row = document.createElement("div");
    row.className = "row";
    row.append(title, badge, counts, results, drop);
    card.append(row);
    cards.push(card);
  }
  $("batches").replaceChildren(...cards);
  return active;
}

async function saveResults(id) {
  try {
    const blob = await getBlob(`/v1/batches/${encodeURIComponent(id)}/results?format=jsonl`);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `batch-${id}.jsonl`;
    document.body.append(link);
    link.click();
    link.remove();
  } catch (exc) {
    notify(explain(exc), true);
  }
}

// ----- the job list -----

function jobRow(job) {
  const li = document.createElement("li");
  li.dataset.job = job.id;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = job.audio.filename || job.audio.source_url || job.id;
  const actions = document.createElement("span");
  actions.className = "row";
  if (job.status === "succeeded" && job.result) {
    actions.append(button(t("open"), () => openTranscript(job.id, notify).catch((exc) => notify(explain(exc), true))));
  }
  const label = job.audio.filename || job.id;
  if (ACTIVE.has(job.status)) {
    actions.append(button(t("cancel"), () => confirm(t("confirmCancel", { name: label })) && act(() => remove(`/v1/jobs/${job.id}`)), "danger"));
  } else {
    actions.append(button(t("delete"), () => confirm(t("confirmDelete", { name: label })) && act(() => remove(`/v1/jobs/${job.id}`)), "danger"));
  }
  const detail = document.createElement("div");
  detail.className = "detail";
  const badge = document.createElement("span");
  badge.className = `badge ${job.status}`;
  badge.textContent = t(job.status);
  detail.append(badge);
  if (ACTIVE.has(job.status)) {
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = job.progress;
    bar.setAttribute("aria-label", `${Math.round(job.progress * 100)}%`);
    detail.append(bar);
    if (job.eta_seconds != null) detail.append(text(t("eta", { eta: clock(job.eta_seconds) })));
  }
  if (job.audio.duration_s != null) detail.append(text(clock(job.audio.duration_s)));
  detail.append(text(new Date(job.created_at).toLocaleString(locale())));
  if (job.batch_id) detail.append(text(t("batch", { id: job.batch_id.slice(0, 8) })));
  if (job.error) {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = `${job.error.message} (${job.error.code})`;
    li.append(name, actions, detail, error);
  } else {
    li.append(name, actions, detail);
  }
  return li;
}

function text(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span;
}

function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

async function act(action) {
  try {
    await action();
  } catch (exc) {
    if (!authFailed(exc)) notify(explain(exc), true);
  }
  poll(true);
}

function listUrl(after) {
  const params = new URLSearchParams({ limit: "20" });
  if ($("status-filter").value) params.set("status", $("status-filter").value);
  if (after) params.set("cursor", after);
  return `/v1/jobs?${params}`;
}

// The first page, replaced on each poll (rows loaded with "More" stay below it).
async function refreshList() {
  const page = await getJson(listUrl(null));
  const listing = JSON.stringify(page.data.map((j) => [j.id, j.status, j.progress, j.eta_seconds]));
  const list = $("job-list");
  const older = [...list.querySelectorAll("li[data-older]")];
  if (listing !== lastListing) {
    // Keep the keyboard's place: the focused button's row and position, found again in the new rows.
    const focused = document.activeElement;
    const row = focused && focused.closest ? focused.closest("li[data-job]:not([data-older])") : null;
    const position = row ? [...row.querySelectorAll("button")].indexOf(focused) : -1;
    list.replaceChildren(...page.data.map(jobRow), ...older);
    if (row) {
      const again = list.querySelector(`li[data-job="${row.dataset.job}"]`);
      const buttons = again ? again.querySelectorAll("button") : [];
      if (buttons.length) buttons[Math.min(position, buttons.length - 1)].focus();
    }
  }
  if (!older.length) cursor = page.next_cursor;
  $("more").hidden = !cursor;
  $("jobs-empty").hidden = page.data.length > 0;
  const changed = listing !== lastListing;
  lastListing = listing;
  return { active: page.data.some((j) => ACTIVE.has(j.status)), changed };
}

async function loadMore() {
  if (!cursor) return;
  try {
    const page = await getJson(listUrl(cursor));
    for (const job of page.data) {
      const row = jobRow(job);
      row.dataset.older = "1";
      $("job-list").append(row);
    }
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
  } catch (exc) {
    if (!authFailed(exc)) notify(explain(exc), true);
  }
}

// Polls quickly while something moves, backs off to 30 s while nothing does, pauses in a hidden tab.
async function poll(reset = false) {
  clearTimeout(pollTimer);
  if (reset) pollDelay = POLL_FASTEST;
  let busy = false;
  try {
    const { active, changed } = await refreshList();
    busy = (await showBatches()) || active || changed;
    if ($("notice").classList.contains("bad")) notify("");
  } catch (exc) {
    if (authFailed(exc)) return; // waits for a key
    notify(explain(exc), true);
  }
  pollDelay = busy ? POLL_FASTEST : Math.min(pollDelay * 2, POLL_SLOWEST);
  if (!document.hidden) pollTimer = setTimeout(poll, pollDelay);
}

async function loadModels() {
  try {
    const models = await getJson("/v1/models");
    const select = $("model");
    select.replaceChildren(
      ...models.data.map((m) => {
        const option = document.createElement("option");
        option.value = m.id;
        option.textContent = m.default ? `${m.id} ★` : m.id;
        option.selected = m.default;
        return option;
      }),
    );
  } catch (exc) {
    authFailed(exc);
  }
}

// ----- wiring -----

function setUp() {
  apply();
  $("language").addEventListener("click", () => {
    switchLanguage();
    lastListing = ""; // redraw the rows in the new language
    poll(true);
  });
  $("key-toggle").addEventListener("click", () => showKeyPanel($("key-panel").hidden));
  $("key-input").value = savedKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey($("key-input").value);
    notify(t("keySaved"));
    showKeyPanel(false);
    loadModels();
    poll(true);
  });
  $("key-forget").addEventListener("click", () => {
    forgetKey();
    $("key-input").value = "";
    notify(t("keyForgotten"));
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  for (const id of ["file-input", "folder-input"]) {
    $(id).addEventListener("change", (event) => {
      addFiles(event.target.files);
      event.target.value = "";
    });
  }
  $("start").addEventListener("click", startUploads);
  $("clear").addEventListener("click", () => {
    pending = pending.filter((p) => !p.done);
    for (const el of [...$("pending").children]) if (!pending.some((p) => p.el === el)) el.remove();
    refreshUploadButtons();
  });
  $("status-filter").addEventListener("change", () => {
    for (const row of $("job-list").querySelectorAll("li[data-older]")) row.remove();
    poll(true);
  });
  $("more").addEventListener("click", loadMore);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll(true);
  });
  setUpTranscript(notify);
  loadModels();
  poll(true);
}

setUp();
