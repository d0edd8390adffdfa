// The console's shell: who is signed in, the main navigation (only what
// the member's role may use), and hash routes to the pages.

import { api, csrfFromCookie, setCsrf, whenSessionEnds } from './api.js';
import { can } from './roles.js';
import {
  h, button, clearMessages, showError, showStatus, busy,
} from './ui.js';
import { signInPage } from './signin.js';
import { overviewPage } from './overview.js';
import { clientsPage, clientPage, newClientPage } from './clients.js';
import { productsPage, productPage, newProductPage } from './products.js';
import { customersPage, customerPage } from './customers.js';
import { ordersPage } from './orders.js';
import { auditPage } from './audit.js';
import { accountPage } from './account.js';
import { staffPage, invitationPage } from './staff.js';
import { webhooksPage, webhookPage, newWebhookPage } from './webhooks.js';

const state = {
  me: null, notice: null, flash: null, restricted: false,
};

/** [path pattern, page, ability needed (or null), nav label]. */
const ROUTES = [
  [/^\/$/, overviewPage, null, 'Overview'],
  [/^\/clients$/, clientsPage, 'clients:read', 'Clients'],
  [/^\/clients\/new$/, newClientPage, 'clients:write'],
  [/^\/clients\/([^/]+)$/, clientPage, 'clients:read'],
  [/^\/webhooks$/, webhooksPage, 'clients:read', 'Webhooks'],
  [/^\/webhooks\/new$/, newWebhookPage, 'clients:write'],
  [/^\/webhooks\/([^/]+)$/, webhookPage, 'clients:read'],
  [/^\/products$/, productsPage, 'products:write', 'Products'],
  [/^\/products\/new$/, newProductPage, 'products:write'],
  [/^\/products\/([^/]+)$/, productPage, 'products:write'],
  [/^\/customers$/, customersPage, 'customers:read', 'Customers'],
  [/^\/customers\/([^/]+)$/, customerPage, 'customers:read'],
  [/^\/orders$/, ordersPage, 'orders:read_all', 'Orders'],
  [/^\/audit$/, auditPage, 'audit:read', 'Audit log'],
  [/^\/staff$/, staffPage, 'staff:manage', 'Staff'],
  [/^\/account$/, accountPage, null, 'My account'],
];

const NAV_PATHS = {
  Overview: '#/', Clients: '#/clients', Webhooks: '#/webhooks', Products: '#/products', Customers: '#/customers',
  Orders: '#/orders', 'Audit log': '#/audit', Staff: '#/staff', 'My account': '#/account',
};

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path, query: new URLSearchParams(query) };
}

export function navigate(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = `#${path}`;
}

function drawNav() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  nav.replaceChildren();
  who.replaceChildren();
  if (!state.me) return;
  const { path } = parseHash();
  const list = h('ul');
  for (const [, , ability, label] of ROUTES) {
    if (!label || (ability && !can(state.me, ability))) continue;
    // A session that must enrol a second factor reaches nothing else.
    if (state.restricted && label !== 'My account') continue;
    const href = NAV_PATHS[label];
    const here = href === `#${path}` || (href !== '#/' && `#${path}`.startsWith(`${href}/`));
    list.append(h('li', {}, h('a', { href, 'aria-current': here ? 'page' : null, text: label })));
  }
  nav.append(list);
  who.append(
    h('span', { class: 'me', text: `${state.me.name} (${state.me.role})` }),
    ' ',
    button('Sign out', (event) => busy(event.currentTarget, signOut)),
  );
}

async function signOut() {
  await api('POST', '/staff/logout');
  signedOut(null);
}

function signedOut(notice) {
  state.me = null;
  state.restricted = false;
  state.notice = notice;
  setCsrf(null);
  navigate('/signin');
}

let generation = 0;

async function render() {
  generation += 1;
  const mine = generation;
  const main = document.getElementById('main');
  const { path, query } = parseHash();
  const invitation = path.match(/^\/invite\/([^/]+)$/);
  if (invitation) {
    drawNav();
    const view = h('div', { class: 'page' });
    main.replaceChildren(
      h('p', { id: 'alert', role: 'alert', class: 'alert', hidden: true }),
      h('p', { id: 'status', role: 'status', class: 'status', hidden: true }),
      view,
    );
    await invitationPage(view, {
      token: decodeURIComponent(invitation[1]),
      accepted(member) {
        signedOut(`Your password is set, ${member.name}. Sign in with ${member.email}.`);
      },
    });
    return;
  }
  if (!state.me && path !== '/signin') {
    navigate('/signin');
    return;
  }
  if (state.me && path === '/signin') {
    navigate('/');
    return;
  }
  if (state.restricted && path !== '/account') {
    navigate('/account');
    return;
  }
  drawNav();
  const view = h('div', { class: 'page' });
  const messages = [
    h('p', { id: 'alert', role: 'alert', class: 'alert', hidden: true }),
    h('p', { id: 'status', role: 'status', class: 'status', hidden: true }),
  ];
  main.replaceChildren(...messages, view);
  clearMessages();
  const ctx = {
    me: state.me,
    can: (ability) => can(state.me, ability),
    query,
    navigate,
    current: () => mine === generation,
    signedIn(session) {
      state.me = session.staff;
      setCsrf(session.csrf_token);
      state.notice = null;
      state.restricted = Boolean(session.mfa_enrollment_required);
      if (state.restricted) {
        state.flash = 'This server requires two-step sign-in: set it up to continue.';
        navigate('/account');
      } else {
        navigate('/');
      }
    },
    /** A new session (after turning on two-step sign-in): its CSRF token. */
    sessionRenewed(session) {
      state.me = session.staff;
      setCsrf(session.csrf_token);
      state.restricted = false;
    },
    restricted: state.restricted,
    refreshMe(me) {
      state.me = me;
      drawNav();
    },
    notice: state.notice,
    /** Shows `message` once the next page is drawn. */
    flash(message) {
      state.flash = message;
    },
    /** Draws the page again (after a change), then shows `message`. */
    async reload(message) {
      state.flash = message;
      await render();
    },
  };
  if (path === '/signin') {
    await signInPage(view, ctx);
    return;
  }
  for (const [pattern, page, ability] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    if (ability && !ctx.can(ability)) {
      view.append(h('h1', { text: 'Not available' }),
        h('p', { text: `Your role (${state.me.role}) does not include this page.` }));
      return;
    }
    try {
      await page(view, ctx, ...match.slice(1).map(decodeURIComponent));
    } catch (error) {
      if (mine === generation) {
        // Refused an ability the role holds, without a second factor: the
        // server requires one (`--require-staff-mfa`) before anything else.
        const lacking = error.status === 403 && error.code === 'insufficient_scope'
          && !state.me.mfa && ctx.can(String(error.problem.scope || ''));
        if (lacking) {
          state.restricted = true;
          state.flash = 'This server requires two-step sign-in: set it up to continue.';
          navigate('/account');
          return;
        }
        showError(error);
      }
    }
    if (mine === generation) {
      document.title = `${view.querySelector('h1')?.textContent || 'Console'} · Jeton console`;
      if (state.flash) showStatus(state.flash);
      state.flash = null;
    }
    return;
  }
  view.append(h('h1', { text: 'Page not found' }), h('p', {}, h('a', { href: '#/', text: 'Go to the overview' })));
}

async function start() {
  whenSessionEnds(() => signedOut('Your session has ended. Sign in again.'));
  window.addEventListener('hashchange', render);
  // With no CSRF cookie there is no session to ask about.
  const csrf = csrfFromCookie();
  if (csrf) {
    try {
      state.me = await api('GET', '/staff/me', undefined, { quietAuth: true });
      setCsrf(csrf);
    } catch {
      state.me = null;
    }
  }
  render();
}

start();
