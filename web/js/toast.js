// Toast notifications in a polite live region (screen readers announce them without stealing focus).

import { h } from './dom.js';

const DURATION = { info: 6000, success: 5000, warning: 10000, error: 10000 };

let region = null;

/** The live region; created once in the body. */
function ensureRegion() {
  if (region && document.body.contains(region)) return region;
  region = document.getElementById('toasts');
  if (!region) {
    region = h('div', { id: 'toasts', class: 'toasts' });
    document.body.append(region);
  }
  region.setAttribute('aria-live', 'polite');
  region.setAttribute('aria-relevant', 'additions');
  return region;
}

/**
 * Show a toast.
 * @param {{title?: string, message?: string, kind?: 'info'|'success'|'warning'|'error', timeout?: number, event?: string}} toast
 *   `timeout` 0 keeps it until dismissed.
 */
export function showToast({ title, message, kind = 'info', timeout, event }) {
  // No role on the toast itself: the region around it is the (single) live region.
  const el = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast', dataset: event ? { event } : {} },
    h('div', { class: 'toast-body' },
      title ? h('p', { class: 'toast-title' }, title) : null,
      message ? h('p', { class: 'toast-message' }, message) : null),
    h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss notification', onclick: () => dismiss() }, '×'));
  const host = ensureRegion();
  host.append(el);
  while (host.children.length > 5) host.firstElementChild.remove();
  const ms = timeout ?? DURATION[kind] ?? 6000;
  let timer = ms > 0 ? setTimeout(dismiss, ms) : null;
  // Hovering or focusing a toast keeps it so it can be read.
  el.addEventListener('mouseenter', () => { clearTimeout(timer); timer = null; });
  el.addEventListener('focusin', () => { clearTimeout(timer); timer = null; });
  function dismiss() {
    clearTimeout(timer);
    el.classList.add('is-leaving');
    setTimeout(() => el.remove(), 150);
  }
  return dismiss;
}
