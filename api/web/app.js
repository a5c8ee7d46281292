// The page's entry point: the language, the key panel, and each panel's controls wired to its module.

import { forgetKey, saveKey, savedKey } from "./api.js";
import { apply, switchLanguage, t } from "./i18n.js";
import { dropOlderRows, loadModels, loadMore, poll, redraw } from "./jobs.js";
import { setUpTranscript } from "./transcript.js";
import { $, notify, showKeyPanel } from "./ui.js";
import { addFiles, clearSent, startUploads } from "./uploads.js";

function setUp() {
  apply();
  $("language").addEventListener("click", () => {
    switchLanguage();
    redraw(); // the rows, in the new language
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
  $("clear").addEventListener("click", clearSent);
  $("status-filter").addEventListener("change", () => {
    dropOlderRows();
    poll(true);
  });
  $("more").addEventListener("click", loadMore);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll(true);
  });
  setUpTranscript();
  loadModels();
  poll(true);
}

setUp();
