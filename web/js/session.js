// The logged-in session (token and user), kept in sessionStorage: one login per browser tab, gone
// when the tab closes — the right default for an admin panel on a shared machine.

import { toDate } from './format.js';

const KEY = 'switchboard.session';
const FLASH_KEY = 'switchboard.flash';

/** Roles from most to least powerful; a role includes the ones after it. */
export const ROLE_ORDER = ['admin', 'operator', 'member'];

/** Whether `user` has `role` or a stronger one. */
export function hasRole(user, role) {
  if (!role) return true;
  if (!user || !Array.isArray(user.roles)) return false;
  const needed = ROLE_ORDER.indexOf(role);
  return user.roles.some((r) => {
    const rank = ROLE_ORDER.indexOf(r);
    return rank !== -1 && rank <= needed;
  });
}

/** @returns {{token: string, expiresAt: *, user: {id: *, username: string, roles: string[]}} | null} */
export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (!session || typeof session.token !== 'string') return null;
    const expires = toDate(session.expiresAt);
    if (expires && expires.getTime() <= Date.now()) {
      clearSession();
      return null;
    }
    return session;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

/** A message for the login page that survives one navigation (why you were logged out). */
export function setFlash(flash) {
  if (flash) sessionStorage.setItem(FLASH_KEY, JSON.stringify(flash));
  else sessionStorage.removeItem(FLASH_KEY);
}

export function takeFlash() {
  const raw = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}
