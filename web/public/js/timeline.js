// The statement timeline of a database session (events of kind 'query',
// plus 'refused'), shared by session.html and watch.html. Every recorded
// string goes in as text.
import { fmtDuration, h, toMs, visible } from './dom.js';
import { highlightSql, isWrite } from './sql.js';

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function paramText(p, i) {
  const o = p && typeof p === 'object' ? p : {};
  const v = o.format === 'null' || o.value === null || o.value === undefined ? 'NULL' : o.format === 'binary' ? `\\x${o.value}` : `'${o.value}'`;
  return `$${i + 1} = ${v}`;
}

/** The text a filter searches in (SQL, parameters, error, tag). */
function haystack(d) {
  const parts = [d.sql, d.tag, d.error && d.error.message, d.error && d.error.code, d.what, d.message];
  if (Array.isArray(d.params)) for (const p of d.params) parts.push(p && p.value);
  return parts.filter((x) => typeof x === 'string').join('\n').toLowerCase();
}

export class Timeline {
  /** `list` is the <ol>; `startedAt` (ms) anchors the "+12.3 s" offsets. */
  constructor(list, startedAt) {
    this.list = list;
    this.startedAt = startedAt;
    this.items = []; // { li, data, write, error, text, bar, durationMs }
    this.maxMs = 0;
    this.filter = { text: '', errorsOnly: false, writesOnly: false };
  }

  /** Adds one event ({ seq, ts, kind, data }). */
  add(ev) {
    const d = ev && typeof ev.data === 'object' && ev.data !== null ? ev.data : {};
    const refused = ev.kind === 'refused';
    // Live tails of other sessions send their other events (commands, files) the same way: shown as plain text.
    const other = typeof ev.kind === 'string' && ev.kind !== 'query' && !refused;
    const sql = String(refused ? d.what ?? '' : other ? d.command ?? (d.op ? `${d.op} ${d.path ?? ''}` : JSON.stringify(d)) : d.sql ?? '');
    const error = refused ? { code: 'refused', message: `${d.message ?? 'refused by policy'}${d.rule ? ` (${d.rule})` : ''}` } : d.error && typeof d.error === 'object' ? d.error : null;
    const durationMs = num(d.durationMs);
    const ts = toMs(ev.ts);
    const offset = ts !== null && this.startedAt !== null ? (ts - this.startedAt) / 1000 : null;
    const fill = h('span', { class: 'fill' });
    const bar = h('span', { class: 'bar', title: durationMs === null ? 'no duration' : `${durationMs} ms` }, fill);
    // The statement's number in its session: the adapter's when recorded, else its position here.
    const seq = typeof d.seq === 'number' ? d.seq : this.items.length + 1;
    const write = !other && isWrite(sql);
    const li = h('li', { class: `stmt${error ? ' error' : ''}${write ? ' write' : ''}`, dataset: { seq } },
      h('div', { class: 'stmt-head' },
        h('span', { class: 'seq mono', title: typeof ev.seq === 'number' ? `audit event #${ev.seq}` : '' }, `#${seq}`),
        h('span', { class: 'offset mono', title: ts !== null ? new Date(ts).toISOString() : '' }, offset !== null ? `+${offset.toFixed(3)} s` : ''),
        h('span', { class: 'badge step' }, refused ? 'refused' : other ? ev.kind : String(d.step ?? 'query')),
        bar,
        h('span', { class: 'dur mono' }, durationMs === null ? '' : fmtDuration(durationMs)),
        num(d.rows) !== null ? h('span', { class: 'rows' }, `${d.rows} row${d.rows === 1 ? '' : 's'}`) : null,
        typeof d.tag === 'string' && d.tag ? h('span', { class: 'tag mono' }, d.tag) : null,
        write ? h('span', { class: 'badge write' }, 'write') : null,
        d.sqlTruncated ? h('span', { class: 'badge' }, `truncated (${d.sqlBytes} bytes)`) : null),
      h('pre', { class: 'sql' }, other ? visible(sql) : highlightSql(visible(sql))),
      Array.isArray(d.params) && d.params.length > 0
        ? h('div', { class: 'params mono' }, d.params.map((p, i) => h('span', { class: 'param' }, visible(paramText(p, i)))), d.paramsTotal ? h('span', { class: 'muted' }, ` … ${d.paramsTotal} in all`) : null)
        : null,
      error ? h('div', { class: 'err mono' }, visible(`${error.code ?? ''}: ${error.message ?? ''}`)) : null);
    const item = { li, fill, durationMs, write, error: Boolean(error), text: other ? sql.toLowerCase() : haystack(d) };
    this.items.push(item);
    this.list.appendChild(li);
    if (durationMs !== null && durationMs > this.maxMs) {
      this.maxMs = durationMs;
      for (const it of this.items) this.size(it);
    } else {
      this.size(item);
    }
    this.show(item);
    return li;
  }

  /** Bar width relative to the slowest statement (CSSOM, which CSP allows; never a style attribute). */
  size(it) {
    const pct = it.durationMs === null || this.maxMs <= 0 ? 0 : Math.max(1, (100 * it.durationMs) / this.maxMs);
    it.fill.style.width = `${pct.toFixed(1)}%`;
  }

  show(it) {
    const f = this.filter;
    it.li.hidden = (f.errorsOnly && !it.error) || (f.writesOnly && !it.write) || (f.text !== '' && !it.text.includes(f.text));
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter, text: String(filter.text ?? this.filter.text).toLowerCase() };
    for (const it of this.items) this.show(it);
    return this.items.filter((it) => !it.li.hidden).length;
  }
}

/** Wires the filter form (text, errors only, writes only) to a timeline; `onCount(shown, total)`. */
export function bindFilters(timeline, { text, errorsOnly, writesOnly }, onCount) {
  const apply = () => {
    const shown = timeline.setFilter({ text: text.value.trim(), errorsOnly: errorsOnly.checked, writesOnly: writesOnly.checked });
    onCount(shown, timeline.items.length);
  };
  text.addEventListener('input', apply);
  errorsOnly.addEventListener('change', apply);
  writesOnly.addEventListener('change', apply);
  text.form?.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  return apply;
}
