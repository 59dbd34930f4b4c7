// SQL display: keyword highlighting built from text nodes and <span>s (the
// SQL is whatever the recorded client sent), and the "writes" classifier.

const KEYWORDS = new Set(`select from where and or not in is null like ilike between exists as on join left right inner outer full cross
natural using group by order having limit offset fetch first next rows only union all intersect except distinct case when then else end
insert into values update set delete returning create alter drop truncate table index view sequence schema database function procedure
trigger grant revoke begin commit rollback savepoint release start transaction with recursive replace merge matched copy to
primary key foreign references default constraint unique check cascade restrict if asc desc nulls true false cast analyze explain
vacuum lock show use describe call do declare execute prepare deallocate listen notify load data infile`.split(/\s+/));

// One token per match: comments, strings, quoted identifiers, numbers, words, parameters, anything else.
const TOKEN = /(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|('(?:[^']|'')*'?|\$\$[\s\S]*?(?:\$\$|$))|("(?:[^"]|"")*"?|`(?:[^`]|``)*`?)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)|(\$\d+|\?|:[A-Za-z_]\w*)|(\s+|[^\sA-Za-z0-9_'"`$-]+|[\s\S])/g;

/** A fragment showing `sql` with keyword/string/comment/number spans. Text only, never markup. */
export function highlightSql(sql) {
  const frag = document.createDocumentFragment();
  const text = String(sql);
  let plain = '';
  const flush = () => {
    if (plain) frag.appendChild(document.createTextNode(plain));
    plain = '';
  };
  const span = (cls, t) => {
    flush();
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = t;
    frag.appendChild(s);
  };
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(text); m !== null; m = TOKEN.exec(text)) {
    if (m[0] === '') { TOKEN.lastIndex++; continue; }
    if (m[1]) span('sql-comment', m[1]);
    else if (m[2]) span('sql-string', m[2]);
    else if (m[3]) plain += m[3];
    else if (m[4]) span('sql-number', m[4]);
    else if (m[5]) {
      if (KEYWORDS.has(m[5].toLowerCase())) span('sql-keyword', m[5]);
      else plain += m[5];
    } else if (m[6]) span('sql-param', m[6]);
    else plain += m[0];
  }
  flush();
  return frag;
}

/** Leading whitespace, comments and opening parentheses removed. */
function head(sql) {
  let s = String(sql);
  for (;;) {
    const t = s.replace(/^[\s(]+/, '');
    if (t.startsWith('--')) { const i = t.indexOf('\n'); s = i < 0 ? '' : t.slice(i + 1); continue; }
    if (t.startsWith('/*')) { const i = t.indexOf('*/'); s = i < 0 ? '' : t.slice(i + 2); continue; }
    return t;
  }
}

const WRITE = /^(INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|TRUNCATE|MERGE)\b/i;

/** Writes: INSERT/UPDATE/DELETE/REPLACE/CREATE/ALTER/DROP/TRUNCATE/MERGE, COPY ... FROM, and WITH ... <write>. */
export function isWrite(sql) {
  const s = head(sql);
  if (WRITE.test(s)) return true;
  if (/^COPY\b/i.test(s)) {
    // COPY t FROM STDIN writes; COPY (SELECT ... FROM t) TO STDOUT reads: drop parenthesised parts first.
    let flat = s;
    for (let prev = ''; prev !== flat;) { prev = flat; flat = flat.replace(/\([^()]*\)/g, ' '); }
    return /\bFROM\b/i.test(flat);
  }
  if (/^WITH\b/i.test(s)) return /\b(INSERT|UPDATE|DELETE|MERGE)\b/i.test(s);
  return false;
}
