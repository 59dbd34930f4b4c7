// sessions.html: GET /api/sessions?user=&target=&segment=&protocol=&q=&live=&since=&before=
// as a table; filters live in the page URL so a search can be shared/reloaded.
import { api } from './api.js';
import { fatal, initPage } from './header.js';
import { statusBadge } from './badges.js';
import { $, append, clear, fmtDuration, fmtTime, h, link, notice, param, toMs } from './dom.js';

const FIELDS = { q: 'q', user: 'f-user', target: 'f-target', segment: 'f-segment', protocol: 'f-protocol', live: 'f-live', since: 'f-since' };
const tbody = $('#sessions tbody');
const more = $('#more');
const status = $('#status');
let next = null;
let seq = 0; // drops answers to superseded searches

function filters() {
  const out = {};
  for (const [k, id] of Object.entries(FIELDS)) {
    const v = document.getElementById(id).value.trim();
    if (v) out[k] = v;
  }
  return out;
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  for (const [k, id] of Object.entries(FIELDS)) document.getElementById(id).value = p.get(k) ?? '';
}

function row(s) {
  const href = link('session.html', { id: s.id });
  const started = toMs(s.startedAt);
  const ended = toMs(s.endedAt);
  const dur = typeof s.durationMs === 'number' ? s.durationMs : s.live && started !== null ? Date.now() - started : ended !== null && started !== null ? ended - started : null;
  const tr = h('tr', { dataset: { id: s.id }, tabindex: '0' },
    h('td', { class: 'nowrap' }, fmtTime(s.startedAt)),
    h('td', {}, String(s.user ?? '')),
    h('td', {}, String(s.target ?? '')),
    h('td', {}, String(s.segment ?? '')),
    h('td', {}, h('span', { class: `proto ${String(s.protocol ?? '')}` }, String(s.protocol ?? '')), s.hasRecording ? h('span', { class: 'muted', title: 'terminal recording' }, ' ▶') : null),
    h('td', { class: 'muted' }, String(s.clientAddr ?? '')),
    h('td', { class: 'nowrap' }, fmtDuration(dur)),
    h('td', {}, statusBadge(s), s.endReason ? h('div', { class: 'muted small' }, String(s.endReason)) : null),
    h('td', {}, h('a', { href, class: 'mono' }, String(s.id))));
  const open = () => location.assign(href);
  tr.addEventListener('click', (e) => { if (!e.target.closest('a')) open(); });
  tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  return tr;
}

async function load(reset) {
  const mine = ++seq;
  const f = filters();
  if (reset) {
    history.replaceState(null, '', link('sessions.html', { ...f, limit: param('limit') }));
    next = null;
  }
  notice(status, 'Loading…', 'info');
  try {
    // ?limit= in the page address is passed on (page size), not shown as a filter.
    const body = await api.get(link('/api/sessions', { ...f, limit: param('limit'), before: reset ? null : next }));
    if (mine !== seq) return;
    if (reset) clear(tbody);
    const list = Array.isArray(body.sessions) ? body.sessions : [];
    append(tbody, list.map(row));
    next = body.next ?? null;
    more.hidden = next === null;
    const n = tbody.rows.length;
    notice(status, n === 0 ? 'No sessions match.' : `${n} session${n === 1 ? '' : 's'}${next ? ' (more available)' : ''}`, 'info');
  } catch (err) {
    if (mine === seq) notice(status, err.message);
  }
}

try {
  await initPage();
  fromUrl();
  $('#filters').addEventListener('submit', (e) => { e.preventDefault(); void load(true); });
  $('#filters').addEventListener('reset', () => setTimeout(() => void load(true), 0));
  for (const id of ['f-protocol', 'f-live']) document.getElementById(id).addEventListener('change', () => void load(true));
  more.addEventListener('click', () => void load(false));
  await load(true);
} catch (err) {
  fatal(err);
}
