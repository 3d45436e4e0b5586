// Login page: username + password → POST /api/auth/login. Shows why the last session ended.

import { h, field } from '../dom.js';
import { icon } from '../icons.js';
import { takeFlash } from '../session.js';

export default {
  path: '/login',
  title: 'Log in',
  render(root, ctx) {
    const flash = takeFlash();
    const username = field({ label: 'Username', control: h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' }) });
    const password = field({ label: 'Password', control: h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }) });
    const error = h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'login-error', hidden: true });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');

    const notice = flash ? h('div', {
      class: `alert ${flash.kind === 'kicked' ? 'alert-warning' : 'alert-info'}`, role: 'alert', 'data-testid': 'login-flash', dataset: { kind: flash.kind || '' },
    }, h('p', { class: 'alert-title' }, flash.title || 'You were logged out'), flash.message ? h('p', null, flash.message) : null) : null;

    const form = h('form', { class: 'login-form', novalidate: true, onsubmit: onSubmit },
      notice, error, username.wrapper, password.wrapper, submit);

    const card = h('section', { class: 'login-card card', 'aria-labelledby': 'login-title' },
      h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark brand-mark-lg' }, icon('logo', 26)),
        h('div', null, h('h1', { id: 'login-title' }, 'Switchboard'), h('p', { class: 'muted' }, 'Sign in to the admin panel'))),
      form);
    root.append(h('div', { class: 'login-page' }, card));
    (username.control.value ? password.control : username.control).focus();

    async function onSubmit(event) {
      event.preventDefault();
      error.hidden = true;
      const name = username.control.value.trim();
      const pass = password.control.value;
      if (!name || !pass) {
        error.textContent = 'Enter your username and password.';
        error.hidden = false;
        (name ? password.control : username.control).focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = 'Logging in…';
      try {
        await ctx.login(name, pass);
      } catch (err) {
        error.textContent = err.message || 'Login failed.';
        error.hidden = false;
        password.control.select();
        password.control.focus();
        submit.disabled = false;
        submit.textContent = 'Log in';
      }
    }
  },
};
