// Sign-in: email and password, then, for a member with two-step sign-in,
// the code from their authenticator app (the API answers 401
// `mfa_required` until it has a right one).

import { api } from './api.js';
import { h, field, form, submit, showError, showStatus } from './ui.js';

export async function signInPage(view, ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const totp = h('input', {
    type: 'text', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]{6}', maxlength: 6,
  });
  const codeField = field('Code from your authenticator app', totp, 'Six digits; a new one every 30 seconds.');
  codeField.hidden = true;
  const signIn = form({ class: 'card narrow', 'aria-label': 'Sign in' }, [
    field('Email', email),
    field('Password', password),
    codeField,
    h('p', {}, submit('Sign in')),
  ], async () => {
    const body = { email: email.value.trim(), password: password.value };
    if (!codeField.hidden) body.totp = totp.value.trim();
    try {
      const session = await api('POST', '/staff/login', body);
      ctx.signedIn(session);
    } catch (error) {
      if (error.code === 'mfa_required') {
        if (codeField.hidden) {
          codeField.hidden = false;
          totp.focus();
          showStatus('Enter the code from your authenticator app.');
          return;
        }
        showError('That code is not right, or it was used already. Enter the current code.');
        totp.value = '';
        totp.focus();
        return;
      }
      throw error;
    }
  });
  view.append(h('h1', { text: 'Sign in' }), h('p', { text: 'The console of this shop, for its staff.' }), signIn);
  if (ctx.notice) showStatus(ctx.notice);
  email.focus();
}
