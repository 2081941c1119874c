// HTTP client for the pryvsync API (SPEC §3).
//
// The token (access token or session id) travels only in the Authorization
// header, never in a URL. The one exception is the notifications websocket
// (see live.js), where browsers cannot set headers.

/** An error answered by the API ({id, message, data}) or a network failure. */
export class ApiError extends Error {
  constructor(status, id, message, data) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0 for network failures
    this.id = id;
    this.data = data;
  }
}

/** True when the error means the token or session is no longer valid. */
export function isAuthFailure(err) {
  return err instanceof ApiError && err.status === 401 && err.id === 'invalid-access-token';
}

/**
 * Builds a query string. Arrays use the `key[]=` form (SPEC §3.3); `null`
 * inside an array is sent as the literal `null` (events without folder).
 * Undefined, null and '' scalar values are left out; 0 is a value.
 */
export function buildQuery(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) {
      for (const v of value) params.append(`${key}[]`, v === null ? 'null' : String(v));
    } else if (value !== undefined && value !== null && value !== '') {
      params.append(key, String(value));
    }
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** Joins URL path segments, encoding each one. */
export function path(...segments) {
  return segments.map((s) => encodeURIComponent(String(s))).join('/');
}

export class Api {
  /**
   * @param {string} username account whose API is called
   * @param {string} token raw access token or session id
   * @param {object} [opts]
   * @param {(err: ApiError) => void} [opts.onAuthLost] called when a call shows the
   *   token is no longer valid (401 invalid-access-token, or a 403 on a read after
   *   the token has worked).
   * @param {string} [opts.origin] defaults to location.origin
   */
  constructor(username, token, opts = {}) {
    this.username = username;
    this.token = token;
    this.onAuthLost = opts.onAuthLost || null;
    this.origin = opts.origin || globalThis.location?.origin || '';
    this.base = `${this.origin}/${encodeURIComponent(username)}/`;
    this.worked = false;
    this.closed = false;
    this.controller = new AbortController();
  }

  /** Aborts in-flight calls and ignores the answers of any later ones. */
  close() {
    this.closed = true;
    this.controller.abort();
  }

  url(p, query) {
    return this.base + p + buildQuery(query);
  }

  /**
   * Calls the API.
   * @param {string} method
   * @param {string} p path relative to the user's base (already encoded; see path())
   * @param {object} [o]
   * @param {object} [o.query]
   * @param {*} [o.json] JSON body
   * @param {FormData} [o.form] multipart body
   * @param {boolean} [o.raw] return the Response (for attachment bytes)
   */
  async request(method, p, o = {}) {
    if (this.closed) throw new ApiError(0, 'closed', 'This view was closed.');
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = this.token;
    let body;
    if (o.form) {
      body = o.form; // the browser sets the multipart boundary
    } else if (o.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.json);
    }
    let res;
    try {
      res = await fetch(this.url(p, o.query), {
        method,
        headers,
        body,
        signal: this.controller.signal,
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      if (this.closed) throw new ApiError(0, 'closed', 'This view was closed.');
      throw new ApiError(0, 'network-error', 'Cannot reach the server. Check your connection and try again.');
    }
    if (this.closed) throw new ApiError(0, 'closed', 'This view was closed.');
    if (!res.ok) {
      const err = await errorFromResponse(res);
      const lost = isAuthFailure(err) || (err.status === 403 && method === 'GET' && this.worked);
      if (lost && this.onAuthLost) this.onAuthLost(err);
      throw err;
    }
    this.worked = true;
    if (o.raw) return res;
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'invalid-response', 'The server sent an answer that could not be read.');
    }
  }

  get(p, query) { return this.request('GET', p, { query }); }
  post(p, json) { return this.request('POST', p, { json }); }
  put(p, json) { return this.request('PUT', p, { json }); }
  del(p, query) { return this.request('DELETE', p, { query }); }
}

const STATUS_TEXT = {
  400: 'The request was refused.',
  401: 'Not authorized.',
  403: 'This action is not allowed with your access.',
  404: 'Not found.',
  413: 'The request or file is too large.',
  429: 'Too many requests. Please wait a minute and try again.',
  500: 'The server met an unexpected error.',
  502: 'The server is unavailable.',
  503: 'The server is unavailable.',
};

async function errorFromResponse(res) {
  let body = null;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  // Errors are {id, message, data?}; tolerate a wrapper {error: {...}} too.
  if (body && typeof body === 'object' && body.error && typeof body.error === 'object') body = body.error;
  const id = body && typeof body.id === 'string' ? body.id : `http-${res.status}`;
  const message = body && typeof body.message === 'string' && body.message
    ? body.message
    : STATUS_TEXT[res.status] || `The server answered ${res.status} ${res.statusText}.`;
  return new ApiError(res.status, id, message, body ? body.data : undefined);
}
