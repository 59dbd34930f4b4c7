// login.html: POST /api/login {user, password}; then back where the person came from.
import { api } from './api.js';
import { notice, param } from './dom.js';

/** Only a path on this site (never //host or a scheme), else the sessions list. */
function nextPage() {
  const n = param('next');
  return n && /^\/(?!\/)[^\\]*$/.test(n) && !n.startsWith('/login.html') ? n : 'sessions.html';
}

const form = document.getElementById('login-form');
const err = document.getElementById('login-error');
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const button = document.getElementById('login-submit');
  button.disabled = true;
  notice(err, '');
  try {
    await api.post('/api/login', { user: form.user.value, password: form.password.value }, { loginOn401: false });
    location.assign(nextPage());
  } catch (ex) {
    notice(err, ex.message);
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
