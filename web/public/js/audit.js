// audit.html: GET /api/audit?since=<seq>&kind=&user= ({ events, next }, in
// seq order; next continues) and GET /api/audit/verify (the hash chain and
// recording digests, as `wicket audit verify`).
import { api } from './api.js';
import { fatal, initPage } from './header.js';
import { $, append, clear, fmtTime, h, link, notice, replace, visible } from './dom.js';

const tbody = $('#audit tbody');
const status = $('#status');
const more = $('#more');
let next = null;

function dataCell(data) {
  const text = JSON.stringify(data ?? {});
  if (text.length <= 160) return h('td', { class: 'mono wrap small' }, visible(text));
  return h('td', { class: 'mono wrap small' }, h('details', {}, h('summary', {}, visible(`${text.slice(0, 140)}…`)), h('pre', {}, visible(JSON.stringify(data, null, 2)))));
}

function row(e) {
  return h('tr', { dataset: { seq: e.seq } },
    h('td', { class: 'mono', title: `hash ${e.hash ?? ''}\nprev ${e.prevHash ?? ''}` }, String(e.seq)),
    h('td', { class: 'nowrap' }, fmtTime(e.ts)),
    h('td', {}, h('span', { class: `badge kind ${String(e.kind).split('.')[0]}` }, String(e.kind))),
    h('td', {}, String(e.actor ?? '')),
    h('td', {}, e.target ? String(e.target) : ''),
    h('td', {}, e.sessionId ? h('a', { href: link('session.html', { id: e.sessionId }), class: 'mono' }, String(e.sessionId)) : ''),
    dataCell(e.data));
}

function filters() {
  return { since: $('#since').value.trim() || '0', kind: $('#kind').value.trim(), user: $('#actor').value.trim() };
}

async function load(reset) {
  const f = filters();
  if (reset) {
    history.replaceState(null, '', link('audit.html', f));
    next = null;
  }
  notice(status, 'Loading…', 'info');
  try {
    const body = await api.get(link('/api/audit', { ...f, since: reset ? f.since : next, limit: 200 }));
    if (reset) clear(tbody);
    append(tbody, (Array.isArray(body.events) ? body.events : []).map(row));
    next = body.next ?? null;
    more.hidden = next === null;
    const n = tbody.rows.length;
    notice(status, `${n} event${n === 1 ? '' : 's'}${next !== null ? ' (more available)' : ''}`, 'info');
  } catch (err) {
    notice(status, err.message);
  }
}

async function verify() {
  const badge = $('#verify-result');
  const button = $('#verify');
  button.disabled = true;
  badge.textContent = 'checking…';
  badge.className = 'badge';
  try {
    const r = await api.get('/api/audit/verify');
    badge.textContent = r.ok ? 'OK' : 'FAILED';
    badge.className = `badge ${r.ok ? 'ok' : 'bad'}`;
    $('#verify-summary').textContent = r.summary || `${r.count} events, ${r.recordingsVerified} recordings`;
    const findings = Array.isArray(r.findings) ? r.findings : [];
    replace($('#findings'), findings.map((f) => h('li', {},
      h('span', { class: 'badge bad' }, String(f.kind)), ' ',
      f.seq !== undefined ? h('span', { class: 'mono' }, `#${f.seq} `) : null,
      f.sessionId ? h('a', { href: link('session.html', { id: f.sessionId }), class: 'mono' }, `${f.sessionId} `) : null,
      visible(String(f.message ?? '')))),
    r.moreFindings ? h('li', { class: 'muted' }, `… and ${r.moreFindings} more`) : null);
  } catch (err) {
    badge.textContent = 'error';
    badge.className = 'badge bad';
    $('#verify-summary').textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

try {
  await initPage();
  const p = new URLSearchParams(location.search);
  $('#since').value = p.get('since') ?? '0';
  $('#kind').value = p.get('kind') ?? '';
  $('#actor').value = p.get('user') ?? '';
  $('#filters').addEventListener('submit', (e) => { e.preventDefault(); void load(true); });
  more.addEventListener('click', () => void load(false));
  $('#verify').addEventListener('click', () => void verify());
  await Promise.all([load(true), verify()]);
} catch (err) {
  fatal(err);
}
