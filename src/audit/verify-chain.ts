/**
 * The streaming half of `wicket audit verify`: walks the chain in seq order
 * with O(1) memory (plus the findings) and says what kind of change explains
 * each break. Per row r (p, pp = the rows stored before it) it computes
 *   fits  = r's hash recomputes from r's fields at its (original) seq
 *   links = r.prevHash is p's hash (or genesis for #1)
 * and classifies:
 *   seq gap                        -> deleted (first missing seq)
 *   !fits, links                   -> edited (r changed in place)
 *   fits, !links, p was clean      -> p inserted (r links to pp) or p rewritten
 *   !fits, !links                  -> renumbered after an insert (r fits one
 *                                     seq lower and links to pp) or after a
 *                                     delete (fits one seq higher), else edited
 * and finally pairs up "edited" rows whose content belongs at each other's
 * place -> reordered. A link break right after a row already reported is not
 * reported again: that row explains it.
 */
import { GENESIS_HASH, chainHash, hashMatches, type ChainedFields } from './canonical.js';
import type { AuditEvent } from '../store/types.js';

export type FindingKind = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'head' | 'recording';

export interface Finding {
  readonly seq?: number;
  readonly sessionId?: string;
  readonly kind: FindingKind;
  readonly message: string;
}

interface Mutable {
  seq?: number;
  sessionId?: string;
  kind: FindingKind;
  message: string;
}

/** Rows kept for the reorder pairing: only rows reported as edited, and at most this many. */
const MAX_SUSPECTS = 256;

interface Suspect {
  readonly ev: AuditEvent;
  /** The seq the row is checked at (stored seq minus the renumbering shift). */
  readonly orig: number;
  readonly finding: Mutable;
}

export class ChainChecker {
  readonly findings: Mutable[] = [];
  /** Findings not kept because of maxFindings. */
  omitted = 0;
  count = 0;
  lastSeq = 0;
  /** Rows inserted (+) or deleted (-) with the later rows renumbered: stored seq - shift = original seq. */
  shift = 0;
  private pp: AuditEvent | null = null;
  private p: AuditEvent | null = null;
  private pFinding: Mutable | null = null;
  private pending: AuditEvent | null = null;
  private suspects: Suspect[] = [];

  constructor(private readonly maxFindings = 1000) {}

  /** Feed rows in seq order. Each is judged when the next arrives (one row of lookahead). */
  push(ev: AuditEvent): void {
    if (this.pending !== null) this.judge(this.pending, ev);
    this.pending = ev;
    this.count++;
    this.lastSeq = ev.seq;
  }

  /** The last row's seq in the original numbering. */
  get lastOriginalSeq(): number {
    return this.lastSeq - this.shift;
  }

  finish(): void {
    if (this.pending !== null) this.judge(this.pending, null);
    this.pending = null;
    this.pairReordered();
  }

  /** Rows past the signed head that are neither chained nor hashed right were appended, not edited. */
  relabelBeyond(headLastSeq: number): void {
    for (const f of this.findings) {
      if (f.kind === 'edited' && f.seq !== undefined && f.seq > headLastSeq) {
        f.kind = 'inserted';
        f.message = `event #${f.seq} is past the signed head and not part of the chain (row inserted)`;
      }
    }
  }

  private add(f: Mutable): Mutable {
    if (this.findings.length < this.maxFindings) this.findings.push(f);
    else this.omitted++;
    return f;
  }

  private fits(ev: AuditEvent, seq: number): boolean {
    return hashMatches(ev, seq);
  }

  private judge(r: AuditEvent, next: AuditEvent | null): void {
    const { p, pp } = this;
    let mine: Mutable | null = null;
    const expected = p ? p.seq + 1 : 1;
    const orig = r.seq - this.shift;
    if (r.seq !== expected) {
      const first = expected - this.shift;
      const last = orig - 1;
      this.add({
        seq: first,
        kind: 'deleted',
        message: last === first ? `event #${first} is missing (row deleted)` : `events #${first}..#${last} are missing (rows deleted)`,
      });
      // The missing rows' hashes are unknown, so only r's own hash can be checked.
      if (!this.fits(r, orig)) mine = this.suspect(r, orig, 'hash mismatch (row edited)');
      return this.advance(r, mine);
    }
    const fits = this.fits(r, orig);
    const links = p ? r.prevHash === p.hash : r.prevHash === GENESIS_HASH;
    if (fits && links) return this.advance(r, null);
    if (!fits && links) {
      mine = this.suspect(r, orig, 'hash mismatch (row edited)');
    } else if (fits && !links) {
      if (p === null) {
        mine = this.add({ seq: r.seq, kind: 'edited', message: `event #${r.seq} does not start from the genesis hash (row edited)` });
      } else if (this.pFinding === null) {
        // r is intact but was chained to something other than p.
        if (pp !== null && r.prevHash === pp.hash) {
          this.pFinding = this.add({ seq: p.seq, kind: 'inserted', message: `event #${p.seq} is not part of the chain: #${r.seq} links to #${pp.seq} (row inserted)` });
        } else {
          this.pFinding = this.add({ seq: p.seq, kind: 'edited', message: `event #${p.seq} was rewritten: #${r.seq} was chained to a different #${p.seq} (row edited)` });
        }
      }
    } else if (p !== null && pp !== null && r.prevHash === pp.hash && this.fits(r, orig - 1) && !(this.pFinding && this.fits(p, orig))) {
      // r belongs one place earlier and follows pp: p was slipped in and the rest renumbered.
      this.shift += 1;
      this.relabelP('inserted', `event #${p.seq} is not part of the chain: later events were renumbered around it (row inserted)`);
    } else if (this.fits(r, orig + 1) && !(next && next.hash === r.prevHash) && !(p && p.hash === r.prevHash)) {
      // r belongs one place later and its predecessor is gone: a row was deleted and the rest renumbered.
      this.shift -= 1;
      this.add({ seq: orig, kind: 'deleted', message: `event #${orig} is missing and later events were renumbered (row deleted)` });
    } else {
      mine = this.suspect(r, orig, 'hash mismatch and broken link (row edited or forged)');
    }
    this.advance(r, mine);
  }

  private advance(r: AuditEvent, finding: Mutable | null): void {
    this.pp = this.p;
    this.p = r;
    this.pFinding = finding;
  }

  private suspect(ev: AuditEvent, orig: number, what: string): Mutable {
    const finding = this.add({ seq: ev.seq, kind: 'edited', message: `event #${ev.seq}: ${what}` });
    if (this.suspects.length < MAX_SUSPECTS) this.suspects.push({ ev, orig, finding });
    return finding;
  }

  private relabelP(kind: FindingKind, message: string): void {
    const p = this.p;
    if (p === null) return;
    if (this.pFinding !== null) {
      this.pFinding.kind = kind;
      this.pFinding.message = message;
      this.suspects = this.suspects.filter((s) => s.finding !== this.pFinding);
    } else {
      this.pFinding = this.add({ seq: p.seq, kind, message });
    }
  }

  /**
   * Two "edited" rows where one's content hashes correctly at the other's
   * place were swapped, not edited: whole rows (own prevHash/hash fit the
   * other seq), all content columns (fit the other's prevHash/hash), or just
   * the data column.
   */
  private pairReordered(): void {
    const fitsAt = (a: AuditEvent, b: AuditEvent, bSeq: number): boolean => {
      if (this.fits(a, bSeq)) return true;
      try {
        if (chainHash(b.prevHash, { ...fields(a), seq: bSeq }) === b.hash) return true;
        return chainHash(b.prevHash, { ...fields(b), data: a.data, seq: bSeq }) === b.hash;
      } catch {
        return false;
      }
    };
    for (const a of this.suspects) {
      for (const b of this.suspects) {
        if (a !== b && fitsAt(a.ev, b.ev, b.orig)) {
          a.finding.kind = 'reordered';
          a.finding.message = `event #${a.ev.seq} holds content of event #${b.orig} (rows reordered)`;
          break;
        }
      }
    }
  }
}

/** The chained fields, spelled out (a spread would miss `data` when it is a getter). */
function fields(e: AuditEvent): ChainedFields {
  return { seq: e.seq, ts: e.ts, kind: e.kind, actor: e.actor, sessionId: e.sessionId, target: e.target, data: e.data };
}
