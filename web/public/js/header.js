// The shared page header: navigation, who is logged in, logout.
import { api } from './api.js';
import { h, replace } from './dom.js';

const NAV = [
  ['sessions.html', 'Sessions'],
  ['live.html', 'Live'],
  ['terminal.html', 'Terminal'],
  ['requests.html', 'Requests'],
  ['map.html', 'Access map'],
  ['audit.html', 'Audit'],
];

/**
 * Renders the header into <header id="top"> and resolves to GET /api/me
 * ({ user, roles, audit, admin, approves }); sends the browser to the login
 * page when the session is gone.
 */
export async function initPage() {
  const top = document.getElementById('top');
  const me = await api.get('/api/me');
  const page = location.pathname.split('/').pop() || 'sessions.html';
  const nav = h('nav', { 'aria-label': 'main' }, NAV
    .filter(([href]) => href !== 'audit.html' || me.audit) // the audit log needs a role with audit: true
    .map(([href, label]) => h('a', { href, class: href === page ? 'current' : null, 'aria-current': href === page ? 'page' : null }, label)));
  const logout = h('button', { type: 'button', id: 'logout', class: 'link' }, 'Log out');
  logout.addEventListener('click', async () => {
    logout.disabled = true;
    try {
      await api.post('/api/logout', {}, { loginOn401: false });
    } finally {
      location.assign('login.html');
    }
  });
  const roles = Array.isArray(me.roles) ? me.roles.join(', ') : '';
  replace(top,
    h('a', { href: 'sessions.html', class: 'brand' }, 'wicket'),
    nav,
    h('span', { class: 'who' },
      h('span', { id: 'me', title: roles ? `roles: ${roles}` : 'no roles' }, String(me.user ?? '')),
      me.admin ? h('span', { class: 'badge admin' }, 'admin') : null,
      logout));
  return me;
}

/** Shows a fatal error in <main> (the API refused or is unreachable). */
export function fatal(err) {
  const main = document.querySelector('main');
  if (err && err.status === 401) return; // already on the way to the login page
  const box = h('p', { class: 'notice error', role: 'alert' }, String(err && err.message ? err.message : err));
  if (main) main.prepend(box);
}
