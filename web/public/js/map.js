// map.html: GET /api/map drawn as four columns (users -> roles -> segments ->
// targets) joined by lines in an inline SVG built with DOM APIs. Segments
// show their lock; admins lock (with a reason) and unlock them:
// POST /api/segments/:name/lock {reason} | /unlock.
import { api, seg } from './api.js';
import { fatal, initPage } from './header.js';
import { $, fmtTime, h, notice, svg } from './dom.js';

const status = $('#status');
const mapEl = $('#map');
const edgesEl = $('#edges');
let me = null;
let model = null; // { nodes: Map key -> el, edges: [{ from, to, cls, title }] }

const key = (kind, name) => `${kind}:${name}`;

function node(kind, name, ...body) {
  return h('div', { class: `node ${kind}`, dataset: { key: key(kind, name) }, tabindex: '0' }, h('div', { class: 'node-name' }, String(name)), ...body);
}

function lockControls(s) {
  if (!me.admin) return null;
  if (s.locked) {
    const b = h('button', { type: 'button', class: 'small unlock' }, 'Unlock');
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await api.post(`/api/segments/${seg(s.name)}/unlock`, {});
        notice(status, `Unlocked ${s.name}.`, 'ok');
        await load();
      } catch (err) {
        notice(status, err.message);
        b.disabled = false;
      }
    });
    return h('div', { class: 'lock-controls' }, b);
  }
  const reason = h('input', { type: 'text', class: 'lock-reason', placeholder: 'reason (incident, ticket)', maxlength: '2000', 'aria-label': `reason to lock ${s.name}` });
  const confirm = h('button', { type: 'submit', class: 'small danger lock-confirm' }, 'Lock now');
  const form = h('form', { class: 'lock-form', hidden: true }, reason, confirm);
  const open = h('button', { type: 'button', class: 'small secondary lock' }, 'Lock…');
  open.addEventListener('click', () => { form.hidden = !form.hidden; if (!form.hidden) reason.focus(); draw(); });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) { reason.focus(); notice(status, 'A lock needs a reason.'); return; }
    confirm.disabled = true;
    try {
      await api.post(`/api/segments/${seg(s.name)}/lock`, { reason: reason.value.trim() });
      notice(status, `Locked ${s.name}: every session in it was ended and new ones are refused.`, 'ok');
      await load();
    } catch (err) {
      notice(status, err.message);
      confirm.disabled = false;
    }
  });
  return h('div', { class: 'lock-controls' }, open, form);
}

function lockInfo(s) {
  if (!s.locked) return null;
  const l = s.lock && typeof s.lock === 'object' ? s.lock : {};
  const by = l.by ?? l.actor ?? l.lockedBy;
  const at = l.at ?? l.ts ?? l.lockedAt;
  return h('div', { class: 'lock-info' }, h('span', { class: 'badge bad' }, 'LOCKED'),
    l.reason ? h('div', { class: 'small' }, String(l.reason)) : null,
    by || at ? h('div', { class: 'muted small' }, `${by ? `by ${by}` : ''}${at ? ` ${fmtTime(at)}` : ''}`) : null);
}

function ruleTitle(role, r) {
  const bits = [r.label ?? role.name, r.access ?? 'write'];
  if (r.approval === 'required' || r.approval === true) bits.push('approval required');
  if (r.maxDuration) bits.push(`max ${r.maxDuration}`);
  if (Array.isArray(r.protocols) && r.protocols.length) bits.push(r.protocols.join('/'));
  if (Array.isArray(r.targets) && r.targets.length) bits.push(`targets ${r.targets.join(', ')}`);
  return bits.join(' · ');
}

function build(m) {
  const users = Array.isArray(m.users) ? m.users : [];
  const roles = Array.isArray(m.roles) ? m.roles : [];
  const segments = Array.isArray(m.segments) ? m.segments : [];
  const targets = Array.isArray(m.targets) ? m.targets : [];
  const nodes = new Map();
  const edges = [];
  const col = (id, els) => {
    const c = $(id);
    c.replaceChildren(c.firstElementChild, ...els);
    for (const el of els) nodes.set(el.dataset.key, el);
  };
  col('#col-users', users.map((u) => node('user', u.name)));
  col('#col-roles', roles.map((r) => node('role', r.name, h('div', { class: 'tags' },
    r.admin ? h('span', { class: 'badge admin' }, 'admin') : null,
    r.audit ? h('span', { class: 'badge' }, 'audit') : null,
    Array.isArray(r.approve) && r.approve.length ? h('span', { class: 'badge', title: `approves ${r.approve.join(', ')}` }, 'approver') : null))));
  col('#col-segments', segments.map((s) => {
    const n = node('segment', s.name, s.description ? h('div', { class: 'muted small' }, String(s.description)) : null, lockInfo(s), lockControls(s));
    if (s.locked) n.classList.add('locked');
    return n;
  }));
  col('#col-targets', targets.map((t) => node('target', t.name, h('span', { class: `proto ${String(t.protocol ?? '')}` }, String(t.protocol ?? '')))));

  const segNames = segments.map((s) => s.name);
  const expand = (list) => (Array.isArray(list) ? (list.includes('*') ? segNames : list) : []);
  for (const u of users) for (const r of u.roles ?? []) edges.push({ from: key('user', u.name), to: key('role', r), cls: 'member', title: `${u.name} has role ${r}` });
  for (const r of roles) {
    const best = new Map(); // segment -> rule (a standing rule wins over a gated one for the line style)
    for (const rule of r.rules ?? []) {
      for (const s of expand(rule.segments)) {
        const prev = best.get(s);
        const gated = rule.approval === 'required' || rule.approval === true;
        if (!prev || (prev.gated && !gated)) best.set(s, { rule, gated });
      }
    }
    for (const [s, { rule, gated }] of best) edges.push({ from: key('role', r.name), to: key('segment', s), cls: `rule${gated ? ' gated' : ''}${rule.access === 'read' ? ' read' : ''}`, title: ruleTitle(r, rule) });
    for (const s of expand(r.approve)) edges.push({ from: key('role', r.name), to: key('segment', s), cls: 'approve', title: `${r.name} approves requests for ${s}` });
  }
  for (const t of targets) edges.push({ from: key('segment', t.segment), to: key('target', t.name), cls: 'contains', title: `${t.name} is in ${t.segment}` });
  return { nodes, edges: edges.filter((e) => nodes.has(e.from) && nodes.has(e.to)) };
}

/** Lines from the right edge of one box to the left edge of the next column's box. */
function draw() {
  if (!model) return;
  const box = mapEl.getBoundingClientRect();
  edgesEl.setAttribute('width', String(mapEl.scrollWidth));
  edgesEl.setAttribute('height', String(mapEl.scrollHeight));
  const showApprove = $('#show-approve').checked;
  const paths = [];
  for (const e of model.edges) {
    if (e.cls === 'approve' && !showApprove) continue;
    const a = model.nodes.get(e.from).getBoundingClientRect();
    const b = model.nodes.get(e.to).getBoundingClientRect();
    const x1 = a.right - box.left;
    const y1 = a.top + a.height / 2 - box.top;
    const x2 = b.left - box.left;
    // Approver lines end a little lower so they do not hide a rule line to the same segment.
    const y2 = b.top + b.height / 2 - box.top + (e.cls === 'approve' ? Math.min(8, b.height / 4) : 0);
    const mx = (x1 + x2) / 2;
    paths.push(svg('path', { d: `M${x1.toFixed(1)},${y1.toFixed(1)} C${mx.toFixed(1)},${y1.toFixed(1)} ${mx.toFixed(1)},${y2.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`, class: `edge ${e.cls}`, dataset: { from: e.from, to: e.to } }, svg('title', {}, e.title)));
  }
  edgesEl.replaceChildren(...paths);
}

/** Highlights everything connected to `start`, following edges both ways without turning back. */
function highlight(start) {
  const on = new Set(start ? [start] : []);
  if (start) {
    for (const dir of ['to', 'from']) {
      const other = dir === 'to' ? 'from' : 'to';
      let frontier = [start];
      while (frontier.length) {
        const nextFrontier = [];
        for (const e of model.edges) if (frontier.includes(e[other]) && !on.has(`${dir}|${e.from}|${e.to}`)) {
          on.add(`${dir}|${e.from}|${e.to}`);
          on.add(`edge|${e.from}|${e.to}`);
          if (!on.has(e[dir])) { on.add(e[dir]); nextFrontier.push(e[dir]); }
        }
        frontier = nextFrontier;
      }
    }
  }
  mapEl.classList.toggle('focus', Boolean(start));
  for (const [k, el] of model.nodes) el.classList.toggle('hl', on.has(k));
  for (const p of edgesEl.children) p.classList.toggle('hl', on.has(`edge|${p.dataset.from}|${p.dataset.to}`));
}

async function load() {
  try {
    const m = await api.get('/api/map');
    model = build(m);
    for (const [k, el] of model.nodes) {
      el.addEventListener('mouseenter', () => highlight(k));
      el.addEventListener('mouseleave', () => highlight(null));
      el.addEventListener('focusin', () => highlight(k));
      el.addEventListener('focusout', () => highlight(null));
    }
    draw();
  } catch (err) {
    notice(status, err.message);
  }
}

try {
  me = await initPage();
  await load();
  // Boxes move when the window, fonts or a lock form change size: redraw the lines.
  new ResizeObserver(() => draw()).observe(mapEl);
  $('#show-approve').addEventListener('change', draw);
} catch (err) {
  fatal(err);
}
