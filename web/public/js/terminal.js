// terminal.html[?target=]: an interactive terminal over WS /api/terminal
// (web/terminal.ts). The picker lists the ssh and shell targets of GET /api/map.
// Messages, JSON text frames:
//   to the server:   {type:'input', data}  {type:'resize', cols, rows}
//   from the server: {type:'ready', session, target}  {type:'output', data}
//                    {type:'exit', code, reason}  {type:'error', message}
// Output goes to xterm.js (rendered as a terminal, never as HTML); errors and
// reasons are shown as text.
import { api } from './api.js';
import { fatal, initPage } from './header.js';
import { $, h, link, notice, param, replace } from './dom.js';

const status = $('#status');
const conn = $('#conn');
const picker = $('#target');
const connectBtn = $('#connect');
const disconnectBtn = $('#disconnect');
const sessionLink = $('#session-link');
const FONT = { fontFamily: 'monospace', fontSize: 14 };
// Server bounds (web/terminal.ts MAX_COLS/MAX_ROWS) and the input frame cap:
// 8192 UTF-16 units stay under 64 KiB even when every one is JSON-escaped.
const MAX_COLS = 1000;
const MAX_ROWS = 500;
const INPUT_CHUNK = 8192;

let term = null;
let ws = null;
let cell = null;
let userClosed = false;

function setConn(text, cls) {
  conn.textContent = text;
  conn.className = `badge ${cls}`;
}

/** The size of one character cell in the terminal's font (measured once). */
function cellSize() {
  if (cell) return cell;
  const probe = h('span', { 'aria-hidden': 'true' }, 'W'.repeat(50));
  probe.style.fontFamily = FONT.fontFamily;
  probe.style.fontSize = `${FONT.fontSize}px`;
  probe.style.position = 'absolute';
  probe.style.visibility = 'hidden';
  probe.style.whiteSpace = 'pre';
  document.body.appendChild(probe);
  const r = probe.getBoundingClientRect();
  probe.remove();
  cell = { w: r.width / 50 || 8, h: r.height || 17 };
  return cell;
}

/** Columns and rows that fit the window below the terminal's top edge. */
function fitSize() {
  const host = $('#terminal');
  const { w, h: ch } = cellSize();
  const top = host.getBoundingClientRect().top + window.scrollY;
  const width = Math.max(200, document.documentElement.clientWidth - 64);
  const height = Math.max(160, window.innerHeight - Math.max(0, top - window.scrollY) - 40);
  return {
    cols: Math.max(20, Math.min(MAX_COLS, Math.floor(width / w))),
    rows: Math.max(5, Math.min(MAX_ROWS, Math.floor(height / ch))),
  };
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function ensureTerminal(cols, rows) {
  $('#term-section').hidden = false;
  if (term) {
    term.reset();
    term.resize(cols, rows);
    return term;
  }
  term = new window.Terminal({ cols, rows, scrollback: 5000, cursorBlink: true, convertEol: false, allowProposedApi: false, ...FONT });
  term.open($('#terminal'));
  term.onData((data) => {
    for (let i = 0; i < data.length; i += INPUT_CHUNK) send({ type: 'input', data: data.slice(i, i + INPUT_CHUNK) });
  });
  let timer = null;
  window.addEventListener('resize', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const { cols: c, rows: r } = fitSize();
      if (c === term.cols && r === term.rows) return;
      term.resize(c, r);
      send({ type: 'resize', cols: c, rows: r });
    }, 150);
  });
  return term;
}

function ended(text, kind) {
  setConn('ended', 'bad');
  notice(status, text, kind);
  connectBtn.disabled = false;
  picker.disabled = false;
  disconnectBtn.hidden = true;
}

function connect(target) {
  $('#term-section').hidden = false; // measured below the toolbar
  const { cols, rows } = fitSize();
  const t = ensureTerminal(cols, rows);
  notice(status, '');
  sessionLink.hidden = true;
  $('#title').textContent = target;
  document.title = `wicket · terminal ${target}`;
  connectBtn.disabled = true;
  picker.disabled = true;
  setConn('connecting', 'warn');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ target, cols: String(cols), rows: String(rows) });
  const sock = new WebSocket(`${proto}//${location.host}/api/terminal?${q}`);
  ws = sock;
  let done = false;
  userClosed = false;
  sock.addEventListener('open', () => {
    disconnectBtn.hidden = false;
    t.focus();
  });
  sock.addEventListener('message', (m) => {
    let msg;
    try {
      msg = JSON.parse(typeof m.data === 'string' ? m.data : '');
    } catch {
      return;
    }
    switch (msg.type) {
      case 'ready':
        setConn('live', 'live');
        if (typeof msg.session === 'string') {
          sessionLink.href = link('session.html', { id: msg.session });
          sessionLink.hidden = false;
        }
        break;
      case 'output':
        if (typeof msg.data === 'string') t.write(msg.data);
        break;
      case 'exit':
        done = true;
        ended(`Session ended: ${typeof msg.reason === 'string' ? msg.reason : 'exit'}.`, 'info');
        break;
      case 'error':
        done = true;
        ended(typeof msg.message === 'string' ? msg.message : 'refused', 'error');
        break;
      default:
        break;
    }
  });
  sock.addEventListener('close', (e) => {
    if (ws === sock) ws = null;
    if (done) return;
    if (userClosed) return ended('Disconnected.', 'info');
    // A refused upgrade (401/403/...) is not visible to scripts: only a 1006 close.
    ended(`Connection closed${e.reason ? `: ${e.reason}` : ` (code ${e.code})`}.`, 'error');
  });
}

try {
  await initPage();
  const map = await api.get('/api/map');
  const targets = (Array.isArray(map.targets) ? map.targets : [])
    .filter((x) => x && (x.protocol === 'ssh' || x.protocol === 'shell'))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  replace(picker, targets.map((x) => h('option', { value: String(x.name) }, `${x.name} (${x.protocol}, ${x.segment})`)));
  const wanted = param('target');
  if (wanted && targets.some((x) => x.name === wanted)) picker.value = wanted;
  if (targets.length === 0) {
    connectBtn.disabled = true;
    notice(status, 'No ssh or shell target is reachable for you.', 'info');
  }
  $('#connect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!picker.value || (ws && ws.readyState <= WebSocket.OPEN)) return;
    history.replaceState(null, '', link('terminal.html', { target: picker.value }));
    connect(picker.value);
  });
  disconnectBtn.addEventListener('click', () => {
    if (!ws) return;
    userClosed = true;
    ws.close(1000, 'closed by the user');
  });
} catch (err) {
  fatal(err);
}
