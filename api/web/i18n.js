// Interface text in Turkish and English: chosen from the browser's language, switchable, remembered.

const STRINGS = {
  tr: {
    title: "Konuşmadan metne",
    apiKey: "API anahtarı",
    otherLanguage: "English",
    keyHelp: "Anahtar yalnızca bu tarayıcıda saklanır ve her istekte Authorization başlığıyla gönderilir.",
    save: "Kaydet",
    forget: "Unut",
    keyNeeded: "Bu hizmet bir API anahtarı istiyor: yukarıdan girin.",
    keyWrong: "Anahtar kabul edilmedi (bilinmiyor, hatalı ya da iptal edilmiş).",
    keySaved: "Anahtar kaydedildi.",
    keyForgotten: "Anahtar bu tarayıcıdan silindi.",
    upload: "Yükle",
    dropHint: "Ses ya da video dosyalarını buraya bırakın veya seçin. Tek dosya bir iş, birden çok dosya bir toplu iş olur.",
    chooseFiles: "Dosya seç",
    chooseFolder: "Klasör seç",
    model: "Model",
    webhook: "Webhook adresi (isteğe bağlı)",
    transcribe: "Yazıya dök",
    clear: "Temizle",
    waiting: "bekliyor",
    uploading: "yükleniyor",
    accepted: "kabul edildi",
    refused: "reddedildi",
    jobs: "İşler",
    status: "Durum",
    all: "Tümü",
    queued: "Sırada",
    processing: "İşleniyor",
    succeeded: "Tamamlandı",
    failed: "Başarısız",
    completed: "Bitti",
    noJobs: "Henüz iş yok.",
    more: "Daha fazla",
    open: "Aç",
    cancel: "İptal et",
    delete: "Sil",
    confirmCancel: "{name} işi iptal edilip silinsin mi?",
    confirmDelete: "{name} işi, sesi ve metniyle birlikte silinsin mi?",
    confirmDeleteBatch: "Bu toplu işin bütün işleri silinsin mi?",
    eta: "kalan ~{eta}",
    batch: "Toplu iş {id}",
    results: "Sonuçlar (JSONL)",
    close: "Kapat",
    search: "Ara",
    threshold: "Düşük güven eşiği",
    copy: "Metni kopyala",
    copied: "Metin panoya kopyalandı.",
    matches: "{n} eşleşme",
    shortcuts: "Kısayollar: Boşluk veya K oynat/duraklat · J veya ← 5 sn geri · L veya → 5 sn ileri · bir kelimeye tıklayınca oraya gidilir.",
    audioGone: "Bu işin sesi artık saklanmıyor; metin yine okunabilir.",
    audioNotReady: "Ses henüz alınmadı.",
    noText: "(metin boş)",
    serviceDown: "Hizmete ulaşılamıyor; yeniden denenecek.",
  },
  en: {
    title: "Speech to text",
    apiKey: "API key",
    otherLanguage: "Türkçe",
    keyHelp: "The key is kept in this browser only and sent with every request in the Authorization header.",
    save: "Save",
    forget: "Forget",
    keyNeeded: "This service needs an API key: enter it above.",
    keyWrong: "The key was refused (unknown, malformed or revoked).",
    keySaved: "Key saved.",
    keyForgotten: "The key was removed from this browser.",
    upload: "Upload",
    dropHint: "Drop audio or video files here, or choose them. One file makes a job, several make a batch.",
    chooseFiles: "Choose files",
    chooseFolder: "Choose a folder",
    model: "Model",
    webhook: "Webhook URL (optional)",
    transcribe: "Transcribe",
    clear: "Clear",
    waiting: "waiting",
    uploading: "uploading",
    accepted: "accepted",
    refused: "refused",
    jobs: "Jobs",
    status: "Status",
    all: "All",
    queued: "Queued",
    processing: "Processing",
    succeeded: "Succeeded",
    failed: "Failed",
    completed: "Completed",
    noJobs: "No jobs yet.",
    more: "More",
    open: "Open",
    cancel: "Cancel",
    delete: "Delete",
    confirmCancel: "Cancel and delete the job {name}?",
    confirmDelete: "Delete the job {name} with its audio and transcript?",
    confirmDeleteBatch: "Delete every job of this batch?",
    eta: "~{eta} left",
    batch: "Batch {id}",
    results: "Results (JSONL)",
    close: "Close",
    search: "Search",
    threshold: "Low-confidence threshold",
    copy: "Copy text",
    copied: "The text was copied to the clipboard.",
    matches: "{n} matches",
    shortcuts: "Shortcuts: Space or K play/pause · J or ← back 5 s · L or → forward 5 s · click a word to go there.",
    audioGone: "This job's audio is no longer kept; the text can still be read.",
    audioNotReady: "The audio has not been fetched yet.",
    noText: "(empty transcript)",
    serviceDown: "The service cannot be reached; trying again.",
  },
};

const STORAGE_KEY = "stt.language";
let current = pick();

function pick() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved in STRINGS) return saved;
  const browser = (navigator.languages || [navigator.language || "tr"]).map((l) => l.toLowerCase());
  const first = browser.find((l) => l.startsWith("tr") || l.startsWith("en")) || "tr";
  return first.startsWith("en") ? "en" : "tr";
}

export function language() {
  return current;
}

export function locale() {
  return current === "tr" ? "tr-TR" : "en-GB";
}

export function t(key, values = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export function switchLanguage() {
  current = current === "tr" ? "en" : "tr";
  localStorage.setItem(STORAGE_KEY, current);
  apply();
}

// Every element with data-i18n gets its text; the page's language follows.
export function apply(root = document) {
  document.documentElement.lang = current;
  document.title = t("title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const other = document.getElementById("language");
  if (other) other.lang = current === "tr" ? "en" : "tr";
}
