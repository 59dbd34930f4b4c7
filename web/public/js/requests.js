// requests.html: GET /api/requests (refreshed every few seconds, in place:
// rows only change when their request did, so a comment being typed stays),
// POST /api/requests {target, duration, reason}, and for approvers
// POST /api/requests/:id/(approve|deny) {comment}; cancel own, revoke approved.
import { api, seg } from './api.js';
import { fatal, initPage } from './header.js';
import { $, fmtTime, h, notice, toMs } from './dom.js';
import { stateBadge } from './badges.js';

const REFRESH_MS = 3000;
const tbody = $('#requests tbody');
const status = $('#status');
let me = null;
const rows = new Map(); // id -> { tr, key }
const drafts = new Map(); // id -> comment typed

const canDecide = (r) => r.state === 'pending' && r.user !== me.user
  && (me.admin || (Array.isArray(me.approves) && (me.approves.includes('*') || me.approves.includes(r.segment))));
const canRevoke = (r) => r.state === 'approved' && (me.admin || (Array.isArray(me.approves) && (me.approves.includes('*') || me.approves.includes(r.segment))));

async function act(r, verb, body, button) {
  button.disabled = true;
  try {
    await api.post(`/api/requests/${seg(r.id)}/${verb}`, body);
    drafts.delete(String(r.id));
    notice(status, `Request #${r.id} ${verb === 'approve' ? 'approved' : verb === 'deny' ? 'denied' : verb === 'revoke' ? 'revoked' : 'cancelled'}.`, 'ok');
    await refresh();
  } catch (err) {
    notice(status, `#${r.id}: ${err.message}`);
    button.disabled = false;
  }
}

function actions(r) {
  const out = [];
  if (canDecide(r) || canRevoke(r)) {
    const comment = h('input', { type: 'text', class: 'comment', maxlength: '2000', placeholder: canRevoke(r) ? 'reason' : 'comment', 'aria-label': `comment on request ${r.id}`, value: drafts.get(String(r.id)) ?? '' });
    comment.addEventListener('input', () => drafts.set(String(r.id), comment.value));
    out.push(comment);
    if (canDecide(r)) {
      const approve = h('button', { type: 'button', class: 'small approve' }, 'Approve');
      const deny = h('button', { type: 'button', class: 'small danger deny' }, 'Deny');
      approve.addEventListener('click', () => act(r, 'approve', { comment: comment.value.trim() || undefined }, approve));
      deny.addEventListener('click', () => act(r, 'deny', { comment: comment.value.trim() || undefined }, deny));
      out.push(approve, deny);
    } else {
      const revoke = h('button', { type: 'button', class: 'small danger revoke' }, 'Revoke');
      revoke.addEventListener('click', () => act(r, 'revoke', { reason: comment.value.trim() || undefined }, revoke));
      out.push(revoke);
    }
  }
  if (r.state === 'pending' && r.user === me.user) {
    const cancel = h('button', { type: 'button', class: 'small secondary cancel' }, 'Cancel');
    cancel.addEventListener('click', () => act(r, 'cancel', {}, cancel));
    out.push(cancel);
  }
  return out;
}

function render(r) {
  const decisions = Array.isArray(r.decisions) ? r.decisions : [];
  const created = toMs(r.createdAt);
  return h('tr', { dataset: { id: r.id, state: r.state } },
    h('td', { class: 'mono' }, `#${r.id}`),
    h('td', { class: 'nowrap', title: created !== null ? new Date(created).toISOString() : '' }, fmtTime(r.createdAt)),
    h('td', {}, String(r.user ?? '')),
    h('td', {}, String(r.target ?? '(whole segment)')),
    h('td', {}, String(r.segment ?? '')),
    h('td', { class: 'nowrap' }, String(r.duration ?? '')),
    h('td', { class: 'wrap' }, String(r.reason ?? '')),
    h('td', {}, stateBadge(r.state), r.approvalsRequired > 1 ? h('div', { class: 'muted small' }, `needs ${r.approvalsRequired} approvals`) : null,
      r.state === 'pending' && r.pendingUntil ? h('div', { class: 'muted small' }, `until ${fmtTime(r.pendingUntil)}`) : null),
    h('td', { class: 'small' }, decisions.map((d) => h('div', {}, `${d.verdict ?? ''} by ${d.by ?? ''}`, d.comment ? h('span', { class: 'muted' }, `: ${d.comment}`) : null))),
    h('td', { class: 'actions' }, actions(r)));
}

async function refresh() {
  const state = $('#state-filter').value;
  try {
    const body = await api.get(`/api/requests${state ? `?state=${encodeURIComponent(state)}` : ''}`);
    const list = Array.isArray(body.requests) ? body.requests : [];
    const seen = new Set();
    let before = null;
    // Newest first, as the API sends them; rows are reused unless their request changed.
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i];
      const id = String(r.id);
      seen.add(id);
      const key = JSON.stringify(r);
      let entry = rows.get(id);
      if (!entry || entry.key !== key) {
        const tr = render(r);
        const hadFocus = entry && entry.tr.contains(document.activeElement);
        if (entry) entry.tr.replaceWith(tr);
        entry = { tr, key };
        rows.set(id, entry);
        if (hadFocus) tr.querySelector('.comment')?.focus();
      }
      // Keep the order: each row goes before the one rendered after it.
      if (before === null) { if (entry.tr.parentNode !== tbody || entry.tr.nextSibling !== null) tbody.appendChild(entry.tr); }
      else if (entry.tr.nextSibling !== before) tbody.insertBefore(entry.tr, before);
      before = entry.tr;
    }
    for (const [id, entry] of rows) if (!seen.has(id)) { entry.tr.remove(); rows.delete(id); }
    $('#refreshed').textContent = `${list.length} request${list.length === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    notice(status, err.message);
  }
}

async function loadTargets() {
  try {
    const map = await api.get('/api/map');
    const names = [...(map.targets ?? []).map((t) => t.name), ...(map.segments ?? []).map((s) => s.name)];
    $('#targets').replaceChildren(...[...new Set(names)].map((n) => h('option', { value: String(n) })));
  } catch {
    // The map is optional here: the field still takes any name.
  }
}

try {
  me = await initPage();
  const form = $('#new-request');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = $('#r-submit');
    button.disabled = true;
    try {
      const out = await api.post('/api/requests', { target: $('#r-target').value.trim(), duration: $('#r-duration').value.trim(), reason: $('#r-reason').value.trim() });
      notice(status, `Request #${out.request?.id ?? ''} created (${out.request?.state ?? 'pending'}).`, 'ok');
      $('#r-reason').value = '';
      await refresh();
    } catch (err) {
      notice(status, err.message);
    } finally {
      button.disabled = false;
    }
  });
  $('#state-filter').addEventListener('change', () => {
    for (const entry of rows.values()) entry.tr.remove();
    rows.clear();
    void refresh();
  });
  await refresh();
  void loadTargets();
  setInterval(refresh, REFRESH_MS);
} catch (err) {
  fatal(err);
}
