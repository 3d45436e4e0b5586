// Classic (non-module) script run in <head>: apply the stored theme before the first paint.
(function () {
  try {
    var theme = localStorage.getItem('switchboard.theme');
    if (theme === 'light' || theme === 'dark') document.documentElement.setAttribute('data-theme', theme);
  } catch (e) { /* storage unavailable: follow the system */ }
}());
