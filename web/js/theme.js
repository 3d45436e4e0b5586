// Light/dark theme: follows the system (prefers-color-scheme) until the user picks one.

const KEY = 'switchboard.theme';

/** The theme in effect: the stored choice, else the system's. */
export function currentTheme() {
  const stored = localStorage.getItem(KEY);
  if (stored === 'light' || stored === 'dark') return stored;
  return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

/** Apply the stored choice (if any) to <html data-theme>. Safe to call at start-up. */
export function applyStoredTheme() {
  const stored = localStorage.getItem(KEY);
  if (stored === 'light' || stored === 'dark') document.documentElement.dataset.theme = stored;
  else delete document.documentElement.dataset.theme;
}

/** Switch to the other theme and remember it. */
export function toggleTheme() {
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  localStorage.setItem(KEY, next);
  applyStoredTheme();
  return next;
}
