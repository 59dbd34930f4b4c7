// session.html?id=: GET /api/sessions/:id -> { session, events: [{ seq, ts, kind, data }] }.
// Terminal sessions get the player and command list, database sessions the
// statement timeline; anything else (files, forwards) is listed below.
import { api, seg } from './api.js';
import { fatal, initPage } from './header.js';
import { $, fmtDuration, fmtTime, h, link, notice, param, replace, toMs, visible } from './dom.js';
import { setupPlayer } from './player.js';
import { Timeline, bindFilters } from './timeline.js';
import { statusBadge } from './badges.js';

function metaList(s) {
  const started = toMs(s.startedAt);
  const ended = toMs(s.endedAt);
  const dur = typeof s.durationMs === 'number' ? s.durationMs : started !== null ? (ended ?? Date.now()) - started : null;
  const rows = [
    ['User', s.user], ['Target', s.target], ['Segment', s.segment], ['Protocol', s.protocol], ['Client', s.clientAddr],
    ['Started', fmtTime(s.startedAt)], ['Ended', s.endedAt ? fmtTime(s.endedAt) : s.live ? 'still running' : '—'],
    ['Duration', fmtDuration(dur)], ['Status', s.status], ['End reason', s.endReason],
    ['Rule', s.rule], ['Access', s.access], ['Grant', s.grantId],
  ];
  return rows.filter(([, v]) => v !== undefined && v !== null && v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]);
}

function summary(ev) {
  const d = ev.data ?? {};
  switch (ev.kind) {
    case 'command': return `${d.source ? `[${d.source}] ` : ''}${d.command ?? ''}`;
    case 'file': return `${d.op ?? ''} ${d.path ?? ''}${d.to ? ` → ${d.to}` : ''}${typeof d.bytes === 'number' ? ` (${d.bytes} bytes)` : ''}${d.result ? ` ${d.result}` : ''}`;
    case 'forward': return `${d.kind ?? ''} ${d.destination ?? ''} in ${d.bytesIn ?? 0} / out ${d.bytesOut ?? 0} bytes`;
    case 'session.start': return `opened by rule ${d.rule ?? '?'} (${d.access ?? '?'} access) from ${d.clientAddr ?? '?'} via ${d.authMethod ?? '?'}${d.grantId ? `, grant ${d.grantId}` : ''}`;
    case 'session.end': return `${d.status ?? 'ended'}${d.reason ? `: ${d.reason}` : ''}${d.recording && d.recording.sha256 ? `; recording sha256 ${d.recording.sha256} (${d.recording.bytes} bytes)` : ''}`;
    case 'session.kill': return `terminate requested: ${d.reason ?? ''}`;
    case 'session.watch': return `watched live${d.clientAddr ? ` from ${d.clientAddr}` : ''}`;
    default: return JSON.stringify(d);
  }
}

try {
  await initPage();
  const id = param('id');
  if (!id) throw new Error('no session id in the address (session.html?id=...)');
  const body = await api.get(`/api/sessions/${seg(id)}`);
  const s = body.session ?? {};
  const events = Array.isArray(body.events) ? body.events : [];
  document.title = `wicket · ${s.user ?? ''}@${s.target ?? ''}`;
  $('#sid').textContent = String(s.id ?? id);
  replace($('#state'), statusBadge(s), s.live ? h('a', { href: link('watch.html', { id: s.id }), class: 'button small', id: 'watch-link' }, 'Watch live') : null);
  replace($('#meta'), metaList(s));

  const commands = events.filter((e) => e.kind === 'command');
  const queries = events.filter((e) => e.kind === 'query' || e.kind === 'refused');
  const shown = new Set();

  if (s.hasRecording) {
    $('#terminal').hidden = false;
    commands.forEach((e) => shown.add(e));
    await setupPlayer(s, commands, {
      container: $('#player'), play: $('#play'), time: $('#player-time'), duration: $('#player-duration'),
      speed: $('#speed'), idle: $('#idle'), download: $('#download'), commands: $('#command-list'), count: $('#command-count'),
    }).catch((err) => notice($('#status'), `recording: ${err.message}`));
  }

  if (queries.length > 0 || s.protocol === 'postgres' || s.protocol === 'mysql') {
    $('#queries').hidden = false;
    const tl = new Timeline($('#timeline'), toMs(s.startedAt));
    for (const e of queries) { tl.add(e); shown.add(e); }
    const count = $('#query-count');
    const apply = bindFilters(tl, { text: $('#query-text'), errorsOnly: $('#errors-only'), writesOnly: $('#writes-only') },
      (n, total) => { count.textContent = n === total ? `(${total})` : `(${n} of ${total})`; });
    apply();
  }

  const rest = events.filter((e) => !shown.has(e));
  if (rest.length > 0) {
    $('#other').hidden = false;
    const startedAt = toMs(s.startedAt);
    replace($('#event-table tbody'), rest.map((e) => {
      const ts = toMs(e.ts);
      return h('tr', {},
        h('td', { class: 'nowrap mono', title: fmtTime(e.ts) }, ts !== null && startedAt !== null ? `+${((ts - startedAt) / 1000).toFixed(3)} s` : fmtTime(e.ts)),
        h('td', {}, h('span', { class: 'badge' }, String(e.kind))),
        h('td', { class: 'mono wrap' }, visible(summary(e))));
    }));
  }
  if (body.eventsTruncated) notice($('#status'), `Showing the first ${events.length} events of this session; the rest are in the audit log (audit.html).`, 'info');
  else if (!s.hasRecording && queries.length === 0 && rest.length === 0) notice($('#status'), 'Nothing recorded in this session.', 'info');
} catch (err) {
  fatal(err);
}
