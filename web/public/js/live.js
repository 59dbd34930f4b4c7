// live.html: running sessions (GET /api/sessions?live=true), refreshed; watch
// opens watch.html?id=, terminate (admins) POSTs /api/sessions/:id/kill {reason}.
import { api, seg } from './api.js';
import { fatal, initPage } from './header.js';
import { $, fmtDuration, fmtTime, h, link, notice, replace, toMs } from './dom.js';

const tbody = $('#live tbody');
const status = $('#status');
let me = null;
const drafts = new Map(); // session id -> kill reason being typed (survives refreshes)

function killForm(s) {
  const reason = h('input', { type: 'text', placeholder: 'reason', maxlength: '2000', class: 'reason', 'aria-label': `reason to terminate ${s.id}`, value: drafts.get(s.id) ?? '' });
  reason.addEventListener('input', () => drafts.set(s.id, reason.value));
  const btn = h('button', { type: 'submit', class: 'danger small' }, 'Terminate');
  const form = h('form', { class: 'inline kill' }, reason, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) { reason.focus(); notice(status, 'Give a reason to terminate a session.'); return; }
    btn.disabled = true;
    try {
      await api.post(`/api/sessions/${seg(s.id)}/kill`, { reason: reason.value.trim() });
      drafts.delete(s.id);
      notice(status, `Terminate sent for ${s.id}.`, 'ok');
      await refresh();
    } catch (err) {
      notice(status, err.message);
      btn.disabled = false;
    }
  });
  return form;
}

function row(s) {
  const started = toMs(s.startedAt);
  return h('tr', { dataset: { id: s.id } },
    h('td', { class: 'nowrap' }, fmtTime(s.startedAt)),
    h('td', {}, String(s.user ?? '')),
    h('td', {}, String(s.target ?? '')),
    h('td', {}, String(s.segment ?? '')),
    h('td', {}, String(s.protocol ?? '')),
    h('td', { class: 'muted' }, String(s.clientAddr ?? '')),
    h('td', { class: 'nowrap' }, started === null ? '—' : fmtDuration(Date.now() - started)),
    h('td', { class: 'actions' },
      h('a', { href: link('watch.html', { id: s.id }), class: 'button small watch' }, 'Watch'),
      h('a', { href: link('session.html', { id: s.id }), class: 'button small secondary' }, 'Details'),
      me && me.admin ? killForm(s) : null));
}

async function refresh() {
  try {
    const body = await api.get('/api/sessions?live=true');
    const list = (Array.isArray(body.sessions) ? body.sessions : []).filter((s) => s.live !== false);
    // Keep focus in a reason box across the refresh.
    const active = document.activeElement;
    const focusId = active && active.classList.contains('reason') ? active.closest('tr')?.dataset.id : null;
    replace(tbody, list.map(row));
    if (focusId) tbody.querySelector(`tr[data-id="${CSS.escape(focusId)}"] .reason`)?.focus();
    $('#live-count').textContent = `(${list.length})`;
    if (list.length === 0) notice(status, 'No live sessions.', 'info');
    else if (status.classList.contains('info')) notice(status, '');
  } catch (err) {
    notice(status, err.message);
  }
}

try {
  me = await initPage();
  await refresh();
  setInterval(refresh, 5000);
} catch (err) {
  fatal(err);
}
