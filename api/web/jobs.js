// The jobs panel: batches submitted from this browser with their counts, the job list (newest first,
// filtered, paged by the API's cursor) kept live by polling that backs off, cancel and delete.

import { ApiError, getBlob, getJson, remove } from "./api.js";
import { locale, t } from "./i18n.js";
import { clock, openTranscript } from "./transcript.js";
import { $, authFailed, button, explain, notify, saveBlob, text } from "./ui.js";

const ACTIVE = new Set(["queued", "processing"]);
const BATCHES_KEY = "stt.batches";
const POLL_FASTEST = 2000;
const POLL_SLOWEST = 30000;

let cursor = null; // the list's next page
let pollDelay = POLL_FASTEST;
let pollTimer = 0;
let lastListing = "";

function rememberedBatches() {
  try {
    return JSON.parse(localStorage.getItem(BATCHES_KEY) || "[]").filter((id) => typeof id === "string");
  } catch {
    return [];
  }
}

export function rememberBatch(id) {
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
    saveBlob(await getBlob(`/v1/batches/${encodeURIComponent(id)}/results?format=jsonl`), `batch-${id}.jsonl`);
  } catch (exc) {
    notify(explain(exc), true);
  }
}

function jobRow(job) {
  const li = document.createElement("li");
  li.dataset.job = job.id;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = job.audio.filename || job.audio.source_url || job.id;
  const actions = document.createElement("span");
  actions.className = "row";
  if (job.status === "succeeded" && job.result) {
    actions.append(button(t("open"), () => openTranscript(job.id).catch((exc) => notify(explain(exc), true))));
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

export async function loadMore() {
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
export async function poll(reset = false) {
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

// Rows are drawn again on the next poll (after the language changes).
export function redraw() {
  lastListing = "";
}

// Rows loaded with "More" go when the filter changes.
export function dropOlderRows() {
  for (const row of $("job-list").querySelectorAll("li[data-older]")) row.remove();
}

export async function loadModels() {
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
