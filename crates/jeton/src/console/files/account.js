// My account: one's own password, and two-step sign-in (TOTP): the QR code
// the API draws, shown once, then the first code to turn it on.

import { api } from './api.js';
import {
  h, field, form, submit, button, busy, showStatus,
} from './ui.js';

/**
 * The API's QR code as an SVG element of this page. The markup is parsed
 * as SVG in a document of its own, stripped of anything that could run or
 * load (scripts, event attributes, links, styles, foreign content), and
 * imported: nothing is assigned as HTML, and the CSP (no inline script or
 * style, no data: images) holds.
 */
export function safeSvg(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const root = doc.documentElement;
  if (!root || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
    throw new Error('The server sent a QR code this page cannot show. Use the setup key below instead.');
  }
  for (const bad of root.querySelectorAll('script, foreignObject, style, iframe, image, use, a')) bad.remove();
  for (const el of [root, ...root.querySelectorAll('*')]) {
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || name === 'style' || name.endsWith('href')) el.removeAttribute(attr.name);
    }
  }
  const svg = document.importNode(root, true);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code for your authenticator app');
  svg.classList.add('qr');
  return svg;
}

/** The secret of an otpauth:// URI, grouped for typing. */
function secretOf(uri) {
  try {
    const secret = new URL(uri).searchParams.get('secret') || '';
    return secret.replace(/(.{4})/g, '$1 ').trim();
  } catch {
    return '';
  }
}

export async function accountPage(view, ctx) {
  const me = await api('GET', '/staff/me');
  if (!ctx.current()) return;
  ctx.refreshMe(me);
  view.append(h('h1', { text: 'My account' }),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Name' }), h('dd', { text: me.name }),
      h('dt', { text: 'Email' }), h('dd', { text: me.email }),
      h('dt', { text: 'Role' }), h('dd', { text: me.role }),
      h('dt', { text: 'Two-step sign-in' }), h('dd', { text: me.mfa ? 'on' : 'off' })));

  const mfa = h('section', { 'aria-labelledby': 'mfa-h' }, h('h2', { id: 'mfa-h', text: 'Two-step sign-in' }));
  if (ctx.restricted) {
    // Nothing else is open to this session until a second factor is set up.
    view.append(mfa);
    mfaSection(mfa, me, ctx);
    return;
  }
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  view.append(h('section', { 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h', text: 'Password' }),
    form({ 'aria-label': 'Change password' }, [
      field('Current password', current),
      field('New password', next, '8 to 256 characters.'),
      field('New password again', again),
      h('p', {}, submit('Change password')),
    ], async (el) => {
      if (next.value !== again.value) throw new Error('The two new passwords differ.');
      await api('POST', '/staff/password', { current: current.value, new: next.value });
      el.reset();
      showStatus('Your password was changed.');
    })));

  view.append(mfa);
  mfaSection(mfa, me, ctx);
}

function mfaSection(mfa, me, ctx) {
  if (me.mfa) {
    mfa.append(h('p', { text: 'On: signing in asks for a code from your authenticator app. An owner can reset it if you lose the app.' }));
    return;
  }
  const setup = h('div');
  mfa.append(
    h('p', { text: 'Off. Turn it on so that a password alone cannot sign in as you.' }),
    h('p', {}, button('Set up two-step sign-in', (event) => busy(event.currentTarget, async () => {
      const enrolment = await api('POST', '/staff/mfa');
      const code = h('input', {
        type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true,
      });
      setup.replaceChildren(
        h('p', { text: 'Scan this code with your authenticator app, then enter the code it shows. It is shown only now.' }),
        safeSvg(enrolment.qr_svg),
        h('p', {}, 'Or type this setup key: ', h('code', { class: 'secret', 'aria-label': 'Setup key', text: secretOf(enrolment.otpauth_uri) })),
        h('p', {}, h('a', { href: enrolment.otpauth_uri, class: 'otpauth', text: 'Open in an authenticator app on this device' })),
        form({ 'aria-label': 'Confirm two-step sign-in' }, [
          field('Code from your authenticator app', code),
          h('p', {}, submit('Turn on two-step sign-in')),
        ], async () => {
          // Turning it on starts a new session, with a new CSRF token.
          ctx.sessionRenewed(await api('POST', '/staff/mfa/confirm', { totp: code.value.trim() }));
          await ctx.reload('Two-step sign-in is on.');
        }),
      );
    }))),
    setup,
  );
}
