// Formatting of times, durations, sizes and values. No DOM here (testable with node).

/** Unix seconds (float) to Date. */
export function toDate(t) {
  return new Date(Number(t) * 1000);
}

/** A `datetime-local` input value (local time) to Unix seconds, or null when empty/invalid. */
export function fromLocalInput(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/** Unix seconds to a `datetime-local` input value (local time, minutes). */
export function toLocalInput(t) {
  if (t === null || t === undefined) return '';
  const d = toDate(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local calendar day key YYYY-MM-DD. */
export function dayKey(t) {
  const d = toDate(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Human heading for a day: Today, Yesterday or a full date. */
export function dayLabel(t, now = Date.now() / 1000) {
  const key = dayKey(t);
  if (key === dayKey(now)) return 'Today';
  if (key === dayKey(now - 86400)) return 'Yesterday';
  return new Intl.DateTimeFormat(undefined, {
    weekday: 'long', year: 'numeric', month: 'long', day: 'numeric',
  }).format(toDate(t));
}

export function timeLabel(t) {
  return new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }).format(toDate(t));
}

export function dateTimeLabel(t) {
  return new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  }).format(toDate(t));
}

/** Duration in seconds to "1 h 05 min", "3 min 20 s", "45 s", "2 d 3 h". */
export function formatDuration(seconds) {
  let s = Math.max(0, Math.round(Number(seconds) || 0));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d > 0) return hr ? `${d} d ${hr} h` : `${d} d`;
  if (hr > 0) return `${hr} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return s ? `${m} min ${s} s` : `${m} min`;
  return `${s} s`;
}

export function formatBytes(n) {
  const v = Number(n) || 0;
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KB`;
  if (v < 1024 * 1024 * 1024) return `${(v / 1024 / 1024).toFixed(1)} MB`;
  return `${(v / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/** The text shown for an event's value. */
export function formatValue(value) {
  if (value === undefined) return '';
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value, null, 2);
}

/** Splits a comma-separated tag list: trimmed, empty ones and duplicates dropped. */
export function parseTags(text) {
  const out = [];
  for (const t of String(text || '').split(',')) {
    const s = t.trim();
    if (s && !out.includes(s)) out.push(s);
  }
  return out;
}

/**
 * Parses a share link `http(s)://HOST/app/#/{username}/{token}` into
 * {username, token, apiUrl, appLink}. Returns null when it is not one.
 */
export function parseShareLink(text) {
  let u;
  try {
    u = new URL(String(text || '').trim());
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const m = /^#\/([^/]+)\/([^/]+)\/?$/.exec(u.hash);
  if (!m) return null;
  let username;
  let token;
  try {
    username = decodeURIComponent(m[1]);
    token = decodeURIComponent(m[2]);
  } catch {
    return null;
  }
  if (!username || !token) return null;
  return {
    username,
    token,
    apiUrl: `${u.origin}/${encodeURIComponent(username)}/`,
    appLink: shareLink(u.origin, username, token),
  };
}

/** The share link for a token. */
export function shareLink(origin, username, token) {
  return `${origin}/app/#/${encodeURIComponent(username)}/${encodeURIComponent(token)}`;
}

/**
 * The app link that opens a bookmark ({url: API root of an account, accessToken}).
 * Returns null when the url is not an http(s) API root.
 */
export function bookmarkLink(bookmark) {
  let u;
  try {
    u = new URL(bookmark.url);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const username = u.pathname.split('/').filter(Boolean)[0];
  if (!username || !bookmark.accessToken) return null;
  let name;
  try { name = decodeURIComponent(username); } catch { name = username; }
  return shareLink(u.origin, name, bookmark.accessToken);
}
