// What each role may do: API.md §13's table, as crates/jeton/src/domain/
// staff.rs has it. The console hides what a role may not do; the API
// refuses it anyway.

const READ = ['clients:read', 'usage:read', 'audit:read', 'customers:read', 'orders:read_all'];

export const ROLE_ABILITIES = {
  owner: [...READ, 'clients:write', 'products:write', 'customers:revoke', 'orders:cancel', 'staff:manage'],
  developer: [...READ, 'clients:write', 'products:write'],
  support: [...READ, 'customers:revoke', 'orders:cancel'],
  viewer: [...READ],
};

export const ROLES = ['owner', 'developer', 'support', 'viewer'];

/** Whether the signed-in member `me` holds `ability`. */
export function can(me, ability) {
  return Boolean(me && (ROLE_ABILITIES[me.role] || []).includes(ability));
}

/** Abilities any holder of clients:write may give a client: the
 * storefront's and the customers' (API.md §13). */
export const OPEN_ABILITIES = [
  'products:read', 'customers:create', 'auth:login',
  'profile:read', 'orders:read', 'orders:write', 'tokens:manage',
];

/** What a publishable key may hold at most. */
export const PUBLISHABLE_ABILITIES = ['products:read', 'customers:create', 'auth:login'];

/** The admin abilities, in the table's order. */
export const ADMIN_ABILITIES = [
  'clients:read', 'clients:write', 'products:write', 'customers:read', 'customers:revoke',
  'orders:read_all', 'orders:cancel', 'audit:read', 'usage:read', 'staff:manage',
];

/** The abilities `me` may put on a client of `kind`. */
export function grantable(me, kind) {
  if (kind === 'publishable') return PUBLISHABLE_ABILITIES;
  return [...OPEN_ABILITIES, ...ADMIN_ABILITIES.filter((a) => can(me, a))];
}
