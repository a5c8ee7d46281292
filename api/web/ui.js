// What every part of the page shares: element lookup, the notice line, errors explained, the key panel,
// and small element builders. Every string from the API goes in as text, never as markup.

import { ApiError } from "./api.js";
import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

export function notify(message, bad = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("bad", bad);
  notice.hidden = !message;
}

export function explain(exc) {
  if (exc instanceof ApiError && exc.code === "missing_api_key") return t("keyNeeded");
  if (exc instanceof ApiError && exc.code === "invalid_api_key") return t("keyWrong");
  if (exc instanceof ApiError && exc.status === 0) return t("serviceDown");
  return exc instanceof ApiError ? `${exc.message} (${exc.code})` : String(exc);
}

export function showKeyPanel(open) {
  $("key-panel").hidden = !open;
  $("key-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("key-input").focus();
}

export function authFailed(exc) {
  if (exc instanceof ApiError && exc.status === 401) {
    notify(explain(exc), true);
    showKeyPanel(true);
    return true;
  }
  return false;
}

export function text(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span;
}

export function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

// Hand a downloaded file to the browser under `filename`.
export function saveBlob(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
