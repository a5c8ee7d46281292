// The public /v1 API, as any client calls it: the key from this browser's storage, errors as
// {status, code, message} from the service's error body.

const KEY = "stt.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function savedKey() {
  return localStorage.getItem(KEY) || "";
}

export function saveKey(key) {
  localStorage.setItem(KEY, key.trim());
}

export function forgetKey() {
  localStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const key = savedKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function failure(response) {
  let code = "http_" + response.status;
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the status
  }
  return new ApiError(response.status, code, message);
}

async function call(method, path, { body, accept } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: headers(accept ? { Accept: accept } : {}) });
  } catch (exc) {
    throw new ApiError(0, "network_error", String(exc));
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson(path) {
  return (await call("GET", path)).json();
}

export async function getBlob(path) {
  return (await call("GET", path)).blob();
}

export async function remove(path) {
  await call("DELETE", path);
}

// A multipart upload with progress (fetch cannot report upload progress): `onProgress(sent, total)` in
// bytes of the request body; resolves with the JSON answer, rejects with an ApiError.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener("load", () => {
      const body = request.response;
      if (request.status >= 200 && request.status < 300) resolve(body);
      else {
        const error = (body && body.error) || { code: "http_" + request.status, message: request.statusText };
        reject(new ApiError(request.status, error.code, error.message));
      }
    });
    request.addEventListener("error", () => reject(new ApiError(0, "network_error", "the upload failed")));
    request.send(form);
  });
}
