// Uploads: files dropped or chosen wait in a list; one becomes a job, several a batch; each file shows
// its own progress, and the service's refusal next to it while the rest go on.

import { upload } from "./api.js";
import { t } from "./i18n.js";
import { poll, rememberBatch } from "./jobs.js";
import { $, authFailed, explain } from "./ui.js";

let pending = []; // {file, el, progress, state, done}

export function addFiles(files) {
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

export async function startUploads() {
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

// Files already sent leave the list; those still waiting stay.
export function clearSent() {
  pending = pending.filter((p) => !p.done);
  for (const el of [...$("pending").children]) if (!pending.some((p) => p.el === el)) el.remove();
  refreshUploadButtons();
}
