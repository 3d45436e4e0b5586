// Formatting of times, JSON and counts for display.

/** Accepts unix seconds, unix milliseconds, numeric strings or date strings; null when unknown. */
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value)) value = Number(value);
  if (typeof value === 'number') return new Date(value < 1e12 ? value * 1000 : value);
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : new Date(parsed);
}

const pad = (n) => String(n).padStart(2, '0');

/** `14:03:27` today, `2026-11-20 14:03` otherwise. */
export function formatTime(value) {
  const d = value instanceof Date ? value : toDate(value);
  if (!d) return '—';
  const now = new Date();
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/** `5s ago`, `3 min ago`, `2 h ago`. */
export function formatAgo(value) {
  const d = value instanceof Date ? value : toDate(value);
  if (!d) return '';
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** ISO text for title attributes. */
export function isoTime(value) {
  const d = value instanceof Date ? value : toDate(value);
  return d ? d.toISOString() : '';
}

/** Compact JSON for one-line display, cut at `max` characters. */
export function compactJson(value, max = 240) {
  let text;
  try {
    text = value === undefined ? '' : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Pretty JSON. */
export function prettyJson(value) {
  return JSON.stringify(value, null, 2);
}

/** `1 connection`, `3 connections`. */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Parse the JSON data editor. Empty text means "no data" (null).
 * @returns {{ok: true, value: *} | {ok: false, error: string}}
 */
export function parseJsonInput(text) {
  if (text.trim() === '') return { ok: true, value: null, empty: true };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: describeJsonError(text, err) };
  }
}

function describeJsonError(text, err) {
  const message = String(err && err.message ? err.message : err);
  const m = /position (\d+)/.exec(message);
  if (!m) return message;
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const reason = message.replace(/\s*in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '');
  return `${reason} (line ${line}, column ${column})`;
}

/** A short description of a JSON value's type for the editor hint. */
export function jsonKind(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of ${value.length}`;
  return typeof value;
}
