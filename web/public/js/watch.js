// watch.html?id=: live tail over WS /api/sessions/:id/live. Messages:
//   {type:'header', header}                 asciicast header (width, height)
//   {type:'event', t, code:'o'|'i'|'r', data} terminal output / input / resize "COLSxROWS"
//   {type:'query', event}                    a database statement ({ seq, ts, kind, data })
//   {type:'end', reason}                     the session ended
// Output goes to xterm.js (which renders it as a terminal, never as HTML);
// statements to the same timeline as session.html.
import { api, seg } from './api.js';
import { fatal, initPage } from './header.js';
import { $, link, notice, param, toMs } from './dom.js';
import { Timeline, bindFilters } from './timeline.js';

const status = $('#status');
const conn = $('#conn');
let term = null;
let timeline = null;
let recount = () => {};
let ended = false;

function setConn(text, cls) {
  conn.textContent = text;
  conn.className = `badge ${cls}`;
}

function ensureTerminal(cols, rows) {
  if (term) return term;
  $('#term-section').hidden = false;
  term = new window.Terminal({
    cols: cols > 0 ? cols : 80, rows: rows > 0 ? rows : 24, disableStdin: true, scrollback: 10000,
    cursorBlink: false, convertEol: false, fontSize: 14, allowProposedApi: false,
  });
  term.open($('#terminal'));
  return term;
}

function ensureTimeline(startedAt) {
  if (timeline) return timeline;
  $('#queries').hidden = false;
  timeline = new Timeline($('#timeline'), startedAt);
  const count = $('#query-count');
  recount = bindFilters(timeline, { text: $('#query-text'), errorsOnly: $('#errors-only'), writesOnly: $('#writes-only') },
    (n, total) => { count.textContent = n === total ? `(${total})` : `(${n} of ${total})`; });
  recount();
  return timeline;
}

function onEnd(reason) {
  ended = true;
  setConn('ended', 'bad');
  notice(status, `Session ended${reason ? `: ${reason}` : ''}.`, 'info');
  $('#kill-form').hidden = true;
}

function connect(s) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/api/sessions/${seg(s.id)}/live`);
  const startedAt = toMs(s.startedAt);
  ws.addEventListener('open', () => setConn('live', 'live'));
  ws.addEventListener('message', (m) => {
    let msg;
    try {
      msg = JSON.parse(typeof m.data === 'string' ? m.data : '');
    } catch {
      return;
    }
    switch (msg.type) {
      case 'header': {
        const hd = msg.header ?? {};
        ensureTerminal(Number(hd.width), Number(hd.height));
        break;
      }
      case 'event': {
        if (msg.code === 'o' && typeof msg.data === 'string') ensureTerminal(0, 0).write(msg.data);
        else if (msg.code === 'r' && typeof msg.data === 'string') {
          const r = /^(\d+)x(\d+)$/.exec(msg.data);
          if (r) ensureTerminal(0, 0).resize(Math.max(1, Math.min(Number(r[1]), 1000)), Math.max(1, Math.min(Number(r[2]), 500)));
        }
        break;
      }
      case 'query': {
        const ev = msg.event ?? {};
        // Either a stored event ({ kind, ts, data }) or the statement itself.
        const e = ev.data && typeof ev.data === 'object' ? ev : { kind: 'query', ts: ev.startedAt ?? ev.ts, data: ev };
        ensureTimeline(startedAt).add(e);
        recount();
        break;
      }
      case 'end':
        onEnd(typeof msg.reason === 'string' ? msg.reason : '');
        break;
      default:
        break;
    }
  });
  ws.addEventListener('close', (e) => {
    if (ended) return;
    setConn('disconnected', 'bad');
    notice(status, `Live stream closed${e.reason ? `: ${e.reason}` : ''}.`, 'error');
  });
  ws.addEventListener('error', () => setConn('error', 'bad'));
}

try {
  const me = await initPage();
  const id = param('id');
  if (!id) throw new Error('no session id in the address (watch.html?id=...)');
  $('#details').href = link('session.html', { id });
  const { session: s } = await api.get(`/api/sessions/${seg(id)}`);
  $('#title').textContent = `${s.user}@${s.target} (${s.protocol})`;
  document.title = `wicket · watching ${s.user}@${s.target}`;
  if (s.protocol === 'postgres' || s.protocol === 'mysql') ensureTimeline(toMs(s.startedAt));
  if (!s.live) {
    onEnd(s.endReason ?? '');
  } else {
    if (me.admin) {
      const form = $('#kill-form');
      form.hidden = false;
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const reason = $('#kill-reason').value.trim();
        if (!reason) { $('#kill-reason').focus(); notice(status, 'Give a reason to terminate the session.'); return; }
        $('#kill').disabled = true;
        try {
          await api.post(`/api/sessions/${seg(id)}/kill`, { reason });
          notice(status, 'Terminate sent.', 'ok');
        } catch (err) {
          notice(status, err.message);
          $('#kill').disabled = false;
        }
      });
    }
    connect(s);
  }
} catch (err) {
  fatal(err);
}
