/**
 * Follows the upstream's responses, command by command, to attribute rows,
 * affected rows, warnings, duration and errors to each statement. I/O-free:
 * the relay hands it every logical packet from the upstream and it says
 * whether the client should see it.
 *
 * Responses, by what the command expects (DEPRECATE_EOF = the client and
 * upstream agreed on CLIENT_DEPRECATE_EOF):
 *   results  (COM_QUERY, COM_STMT_EXECUTE): per result, OK | ERR | 0xFB
 *            LOCAL INFILE request | column count, column definitions, [EOF],
 *            rows, then EOF or (DEPRECATE_EOF) a 0xFE OK; another result
 *            follows while SERVER_MORE_RESULTS_EXISTS is set.
 *   prepare  STMT_PREPARE_OK, param definitions [EOF], column definitions [EOF] | ERR.
 *   fetch    rows, then EOF/0xFE OK | ERR.
 *   fields   (COM_FIELD_LIST) column definitions, then EOF/0xFE OK | ERR.
 *   single   one packet (OK, ERR, EOF, or COM_STATISTICS' string).
 * A row can never pass for a terminator: a text row starting 0xFE would need
 * an 8-byte length (a packet of 16 MiB or more), and one starting 0xFF is
 * not valid, so 0xFE with a payload under 0xFFFFFF ends the rows and 0xFF is
 * an ERR. Binary rows start with 0x00.
 */
import type { QueryEvent, QueryParam, QueryStep } from '../../src/session.js';
import { MAX_CHUNK, PacketError, Reader, STATUS, parseEof, parseErr, parseOk, type LogicalPacket } from './packets.js';

export type Expect = 'results' | 'prepare' | 'fetch' | 'fields' | 'single' | 'none';

export interface PendingCommand {
  readonly expect: Expect;
  readonly step: QueryStep;
  /** What is recorded: one entry per statement; results beyond the last go to the last. */
  readonly statements: readonly string[];
  readonly statement?: string;
  readonly params?: readonly QueryParam[];
  /** wicket's own command (e.g. re-applying READ ONLY): its response is not forwarded. */
  readonly internal?: boolean;
  /** Nothing is recorded for it (COM_PING, STMT_CLOSE ...). */
  readonly quiet?: boolean;
  /** Called with the server's answer to a COM_STMT_PREPARE. */
  readonly onPrepared?: (stmtId: number, numParams: number) => void;
  /** Called when the command's response is complete. */
  readonly onDone?: (ok: boolean) => void;
}

export type Action = 'forward' | 'drop' | 'infile';

type Phase = 'first' | 'columns' | 'columnsEof' | 'rows' | 'prepParams' | 'prepParamsEof' | 'prepColumns' | 'prepColumnsEof';

interface Active {
  readonly cmd: PendingCommand;
  readonly startedAt: number;
  readonly t0: bigint;
  phase: Phase;
  /** Column or definition packets still expected in this phase. */
  left: number;
  prepColumns: number;
  /** Index of the statement the current result belongs to. */
  index: number;
  rows: number;
  recorded: number;
}

const isTerminator = (p: LogicalPacket): boolean => p.payload[0] === 0xfe && p.length < MAX_CHUNK;

export class ResponseTracker {
  private readonly queue: Active[] = [];

  constructor(
    private readonly deprecateEof: boolean,
    private readonly emit: (ev: QueryEvent) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Commands sent upstream whose responses are still (partly) to come. */
  get pending(): number {
    return this.queue.length;
  }

  /** True while the oldest outstanding command is wicket's own. */
  get internalHead(): boolean {
    return this.queue[0]?.cmd.internal === true;
  }

  /** Registers a command just sent upstream. `none` commands complete at once. */
  sent(cmd: PendingCommand): void {
    const a: Active = { cmd, startedAt: this.now(), t0: process.hrtime.bigint(), phase: cmd.expect === 'prepare' ? 'first' : cmd.expect === 'fetch' ? 'rows' : cmd.expect === 'fields' ? 'columns' : 'first', left: cmd.expect === 'fields' ? Infinity : 0, prepColumns: 0, index: 0, rows: 0, recorded: 0 };
    if (cmd.expect === 'none') {
      this.record(a, {});
      cmd.onDone?.(true);
      return;
    }
    this.queue.push(a);
  }

  /** One logical packet from the upstream. Throws PacketError when nothing was expected or it cannot be read. */
  packet(p: LogicalPacket): Action {
    const a = this.queue[0];
    if (!a) {
      // Unsolicited: the server reporting it is going away (ERR) is passed on; anything else is a protocol error.
      if (p.payload[0] === 0xff) return 'forward';
      throw new PacketError(`upstream sent a packet (0x${(p.payload[0] ?? 0).toString(16)}) while no command was pending`);
    }
    const action = this.step(a, p);
    return a.cmd.internal && action === 'forward' ? 'drop' : action;
  }

  private step(a: Active, p: LogicalPacket): Action {
    const head = p.payload[0];
    switch (a.cmd.expect) {
      case 'single':
        if (head === 0xff) this.finish(a, { error: parseErr(p.payload) });
        else if (head === 0x00 && p.length >= 7) this.finish(a, { ok: parseOk(p.payload) });
        else this.finish(a, {});
        return 'forward';
      case 'prepare':
        return this.prepare(a, p);
      default:
        return this.results(a, p);
    }
  }

  private results(a: Active, p: LogicalPacket): Action {
    const head = p.payload[0];
    if (head === 0xff) {
      this.finish(a, { error: parseErr(p.payload) });
      return 'forward';
    }
    switch (a.phase) {
      case 'first': {
        if (head === 0x00) {
          const ok = parseOk(p.payload);
          this.result(a, { ok }, ok.status);
          return 'forward';
        }
        if (head === 0xfb) return 'infile';
        const r = new Reader(p.payload);
        const n = r.lenenc('column count');
        if (n === null || n === 0) throw new PacketError('malformed column count');
        a.phase = 'columns';
        a.left = n;
        a.rows = 0;
        return 'forward';
      }
      case 'columns':
        if (a.cmd.expect === 'fields') {
          if (isTerminator(p)) this.finish(a, {});
          return 'forward';
        }
        if (--a.left === 0) a.phase = this.deprecateEof ? 'rows' : 'columnsEof';
        return 'forward';
      case 'columnsEof': {
        if (head !== 0xfe) throw new PacketError('expected EOF after column definitions');
        const { status } = parseEof(p.payload);
        if (status & STATUS.CURSOR_EXISTS) this.finish(a, { rows: 0 });
        else a.phase = 'rows';
        return 'forward';
      }
      case 'rows': {
        if (!isTerminator(p)) {
          a.rows++;
          return 'forward';
        }
        const status = this.deprecateEof ? parseOk(p.payload).status : parseEof(p.payload).status;
        const warnings = this.deprecateEof ? parseOk(p.payload).warnings : parseEof(p.payload).warnings;
        this.result(a, { rows: a.rows, warnings }, status);
        return 'forward';
      }
      default:
        throw new PacketError(`unexpected response state ${a.phase}`);
    }
  }

  private prepare(a: Active, p: LogicalPacket): Action {
    const head = p.payload[0];
    if (a.phase === 'first') {
      if (head === 0xff) {
        this.finish(a, { error: parseErr(p.payload) });
        return 'forward';
      }
      if (head !== 0x00) throw new PacketError('malformed COM_STMT_PREPARE response');
      const r = new Reader(p.payload, 1);
      const stmtId = r.u32('statement id');
      const columns = r.u16('column count');
      const params = r.u16('parameter count');
      a.cmd.onPrepared?.(stmtId, params);
      a.prepColumns = columns;
      this.afterPrepParams(a, params);
      return 'forward';
    }
    switch (a.phase) {
      case 'prepParams':
        if (--a.left === 0) {
          if (this.deprecateEof) this.afterPrepParamsEof(a);
          else a.phase = 'prepParamsEof';
        }
        return 'forward';
      case 'prepParamsEof':
        if (head !== 0xfe) throw new PacketError('expected EOF after parameter definitions');
        this.afterPrepParamsEof(a);
        return 'forward';
      case 'prepColumns':
        if (--a.left === 0) {
          if (this.deprecateEof) this.finish(a, {});
          else a.phase = 'prepColumnsEof';
        }
        return 'forward';
      case 'prepColumnsEof':
        if (head !== 0xfe) throw new PacketError('expected EOF after column definitions');
        this.finish(a, {});
        return 'forward';
      default:
        throw new PacketError(`unexpected prepare state ${a.phase}`);
    }
  }

  private afterPrepParams(a: Active, params: number): void {
    if (params > 0) {
      a.phase = 'prepParams';
      a.left = params;
    } else {
      this.afterPrepParamsEof(a);
    }
  }

  private afterPrepParamsEof(a: Active): void {
    if (a.prepColumns > 0) {
      a.phase = 'prepColumns';
      a.left = a.prepColumns;
    } else {
      this.finish(a, {});
    }
  }

  /** One result of a results-command is complete; another follows if the server says so. */
  private result(a: Active, r: Outcome, status: number): void {
    if (status & STATUS.MORE_RESULTS_EXISTS) {
      this.record(a, r);
      a.phase = 'first';
      a.rows = 0;
      return;
    }
    this.finish(a, r);
  }

  private finish(a: Active, r: Outcome): void {
    this.record(a, r);
    this.queue.shift();
    a.cmd.onDone?.(r.error === undefined);
  }

  private record(a: Active, r: Outcome): void {
    const cmd = a.cmd;
    if (cmd.quiet || cmd.internal) return;
    const statements = cmd.statements;
    const i = Math.min(a.index, Math.max(0, statements.length - 1));
    a.index++;
    // Results beyond the last statement (a CALL's own result sets) count towards it; record them once.
    if (a.recorded > i) return;
    a.recorded = i + 1;
    const durationMs = Number(process.hrtime.bigint() - a.t0) / 1e6;
    const tag = r.error ? null : r.ok ? okTag(r.ok.affectedRows, r.ok.warnings) : r.rows !== undefined ? rowsTag(r.rows, r.warnings ?? 0) : null;
    this.emit({
      type: 'query',
      step: cmd.step,
      startedAt: a.startedAt,
      durationMs,
      sql: statements[i] ?? '',
      ...(cmd.statement !== undefined ? { statement: cmd.statement } : {}),
      ...(cmd.params !== undefined && i === 0 ? { params: cmd.params } : {}),
      rows: r.error ? null : r.ok ? r.ok.affectedRows : r.rows ?? null,
      tag,
      error: r.error ? { code: `${r.error.code}/${r.error.sqlState}`, message: r.error.message } : null,
    });
    // Statements of a multi-statement string after a failed one never ran: nothing is recorded for them.
  }
}

interface Outcome {
  readonly ok?: { affectedRows: number; warnings: number };
  readonly rows?: number;
  readonly warnings?: number;
  readonly error?: { code: number; sqlState: string; message: string };
}

const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
const okTag = (affected: number, warnings: number): string => `OK ${plural(affected, 'row')} affected${warnings ? `, ${plural(warnings, 'warning')}` : ''}`;
const rowsTag = (rows: number, warnings: number): string => `${plural(rows, 'row')}${warnings ? `, ${plural(warnings, 'warning')}` : ''}`;
