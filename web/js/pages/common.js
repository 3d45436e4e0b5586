// Building blocks shared by the pages.

import { h } from '../dom.js';

/** The page heading block: <h1> and a one-line description, optional actions on the right. */
export function pageHeader(title, description, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', null, h('h1', null, title), description ? h('p', { class: 'muted' }, description) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

/** A card with an optional heading. */
export function card(title, ...children) {
  const id = title ? `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}` : null;
  return h('section', { class: 'card', 'aria-labelledby': id }, title ? h('h2', { class: 'card-title', id }, title) : null, children);
}

/** A button. `kind`: primary | secondary | danger | ghost. */
export function button(label, onclick, { kind = 'secondary', type = 'button', ...rest } = {}) {
  return h('button', { type, class: `btn btn-${kind}`, onclick, ...rest }, label);
}

/** Show an error (ApiError or socket error) inline. */
export function errorBox(err) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, err && err.message ? err.message : String(err));
}

/** Label + value rows. */
export function details(rows) {
  return h('dl', { class: 'details' }, rows.map(([k, v, attrs]) => [h('dt', null, k), h('dd', attrs || null, v)]));
}

/** Tag-name rule from the protocol: 1–64 chars of A-Za-z0-9_.:/- */
export const TAG_PATTERN = /^[A-Za-z0-9_.:/-]{1,64}$/;

/** Parse a user id typed in a form: integers are sent as numbers, anything else as text. */
export function parseUserId(text) {
  const t = String(text).trim();
  return /^-?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : t;
}
