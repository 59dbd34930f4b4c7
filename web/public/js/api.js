// The JSON API (DESIGN.md §6), same origin with the login cookie. POSTs send
// Content-Type: application/json, which the API requires of cookie callers
// (a cross-site form cannot send it).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Sends the browser to the login page, coming back here afterwards. */
export function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`login.html?next=${encodeURIComponent(here)}`);
}

async function request(method, path, body, { raw = false, loginOn401 = true } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: raw ? '*/*' : 'application/json' } };
  if (method !== 'GET' && method !== 'HEAD') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `cannot reach wicket: ${err.message}`);
  }
  if (res.status === 401 && loginOn401) {
    toLogin();
    throw new ApiError(401, 'WICKET_ERR_AUTH', 'login required');
  }
  if (!res.ok) {
    let code = `HTTP_${res.status}`;
    let message = `${method} ${path}: HTTP ${res.status}`;
    try {
      const j = await res.json();
      if (j && j.error) {
        code = String(j.error.code ?? code);
        message = String(j.error.message ?? message);
      }
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, code, message);
  }
  if (raw) return res;
  return res.json();
}

export const api = {
  get: (path, opts) => request('GET', path, undefined, opts),
  post: (path, body, opts) => request('POST', path, body, opts),
  /** The Response itself (for text such as a .cast). */
  raw: (path, opts) => request('GET', path, undefined, { ...opts, raw: true }),
};

/** Path segment, encoded. */
export const seg = (s) => encodeURIComponent(String(s));
