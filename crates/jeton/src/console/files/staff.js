// Staff (owners only): the team, invitations (the link shown once), role
// changes, disabling, and resetting a member's two-step sign-in.

import { api, withQuery, seg } from './api.js';
import { ROLES } from './roles.js';
import { forgetStaffNames } from './audit.js';
import {
  h, field, select, form, submit, button, busy, table, when, shownOnce,
} from './ui.js';

const ROLE_OPTIONS = ROLES.map((role) => [role, role]);

export async function staffPage(view, ctx) {
  view.append(h('h1', { text: 'Staff' }));
  const page = await api('GET', '/admin/staff');
  if (!ctx.current()) return;
  const rows = page.data.map((member) => {
    const role = select(ROLE_OPTIONS, { value: member.role, 'aria-label': `Role of ${member.email}` });
    const disabled = Boolean(member.disabled_at);
    return [
      member.name,
      member.email,
      h('span', { class: 'inline' }, role, button('Change role', (event) => busy(event.currentTarget, async () => {
        await api('PATCH', `/admin/staff/${seg(member.id)}`, { role: role.value });
        forgetStaffNames();
        await ctx.reload(`${member.email} is now ${role.value}.`);
      }), { 'aria-label': `Change the role of ${member.email}` })),
      member.mfa ? 'on' : 'off',
      when(member.last_login_at),
      disabled ? 'disabled' : 'active',
      h('span', { class: 'inline' },
        button(disabled ? 'Enable' : 'Disable', (event) => busy(event.currentTarget, async () => {
          await api('PATCH', `/admin/staff/${seg(member.id)}`, { disabled: !disabled });
          await ctx.reload(`${member.email} is ${disabled ? 'enabled' : 'disabled'}.`);
        }), { 'aria-label': `${disabled ? 'Enable' : 'Disable'} ${member.email}` }),
        member.mfa ? button('Reset two-step sign-in', (event) => busy(event.currentTarget, async () => {
          await api('POST', `/admin/staff/${seg(member.id)}/reset-mfa`);
          await ctx.reload(`${member.email} signs in with a password alone until they set it up again.`);
        }), { 'aria-label': `Reset two-step sign-in of ${member.email}` }) : null,
        h('a', { href: withQuery('#/audit', { staff_id: member.id }), text: 'Their actions' })),
    ];
  });
  view.append(table(null, ['Name', 'Email', 'Role', 'Two-step', 'Last sign-in', 'Status', 'Actions'], rows, { 'aria-label': 'Staff' }));

  const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
  const name = h('input', { type: 'text', required: true });
  const role = select(ROLE_OPTIONS, { value: 'viewer' });
  const result = h('div');
  view.append(h('section', { 'aria-labelledby': 'invite-h' }, h('h2', { id: 'invite-h', text: 'Invite a colleague' }),
    form({ 'aria-label': 'Invite a colleague' }, [
      field('Email', email), field('Name', name), field('Role', role), h('p', {}, submit('Send invitation')),
    ], async (el) => {
      const invited = await api('POST', '/admin/staff', { email: email.value.trim(), name: name.value.trim(), role: role.value });
      el.reset();
      forgetStaffNames();
      result.replaceChildren(shownOnce('Invitation link', invited.invite_url,
        `Send this link to ${invited.staff.email} yourself: it works once, for 72 hours, and will not be shown again.`));
    }), result));
}

/**
 * The page of an invitation's link (`#/invite/{token}`, the token in the
 * fragment, which no request carries): the invitee chooses a password,
 * then signs in.
 */
export async function invitationPage(view, { token, accepted }) {
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  view.append(h('h1', { text: 'Join the console' }),
    h('p', { text: 'Choose the password you will sign in with. This link works once.' }),
    form({ class: 'card narrow', 'aria-label': 'Choose a password' }, [
      field('Password', password, '8 to 256 characters.'),
      field('Password again', again),
      h('p', {}, submit('Set password')),
    ], async () => {
      if (password.value !== again.value) throw new Error('The two passwords differ.');
      try {
        const member = await api('POST', `/staff/invites/${seg(token)}`, { password: password.value }, { quietAuth: true });
        accepted(member);
      } catch (error) {
        if (error.status === 404) {
          throw new Error('This invitation link is unknown, used or expired. Ask an owner for a new one.');
        }
        throw error;
      }
    }));
  password.focus();
}
