import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { SftpObserver } from '../../../protocols/ssh/sftp.js';
import type { FileEvent } from '../../../src/session.js';
import { generateEd25519 } from '../../../src/util/openssh-key.js';

// --- packet builders (SFTP v3: uint32 length | byte type | body) ---------

const u8 = (n: number): Buffer => Buffer.from([n]);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const str = (s: string | Buffer): Buffer => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
};
const attrs = (perms?: number): Buffer => (perms === undefined ? u32(0) : Buffer.concat([u32(0x04), u32(perms)]));
const packet = (type: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(body.length + 1), u8(type), body]);
};

const R = 0x01, W = 0x02, CREAT = 0x08, TRUNC = 0x10;

/** Client requests. */
const C = {
  init: () => packet(1, u32(3)),
  open: (id: number, p: string | Buffer, pflags: number, perms?: number) => packet(3, u32(id), str(p), u32(pflags), attrs(perms)),
  close: (id: number, h: string) => packet(4, u32(id), str(h)),
  read: (id: number, h: string, off: number, len: number) => packet(5, u32(id), str(h), u64(off), u32(len)),
  write: (id: number, h: string, off: number, data: Buffer) => packet(6, u32(id), str(h), u64(off), str(data)),
  lstat: (id: number, p: string) => packet(7, u32(id), str(p)),
  setstat: (id: number, p: string, perms?: number) => packet(9, u32(id), str(p), attrs(perms)),
  fsetstat: (id: number, h: string, perms?: number) => packet(10, u32(id), str(h), attrs(perms)),
  opendir: (id: number, p: string) => packet(11, u32(id), str(p)),
  readdir: (id: number, h: string) => packet(12, u32(id), str(h)),
  remove: (id: number, p: string) => packet(13, u32(id), str(p)),
  mkdir: (id: number, p: string | Buffer, perms?: number) => packet(14, u32(id), str(p), attrs(perms)),
  rmdir: (id: number, p: string) => packet(15, u32(id), str(p)),
  realpath: (id: number, p: string) => packet(16, u32(id), str(p)),
  stat: (id: number, p: string) => packet(17, u32(id), str(p)),
  rename: (id: number, a: string, b: string) => packet(18, u32(id), str(a), str(b)),
  symlink: (id: number, target: string, link: string) => packet(20, u32(id), str(target), str(link)),
  extended: (id: number, name: string, ...rest: Buffer[]) => packet(200, u32(id), str(name), ...rest),
};

/** Server replies. */
const S = {
  version: (v = 3) => packet(2, u32(v), str('posix-rename@openssh.com'), str('1')),
  status: (id: number, code: number, msg = '') => packet(101, u32(id), u32(code), str(msg), str('')),
  ok: (id: number) => S.status(id, 0, 'Success'),
  handle: (id: number, h: string) => packet(102, u32(id), str(h)),
  data: (id: number, d: Buffer) => packet(103, u32(id), str(d)),
  name: (id: number, ...names: string[]) =>
    packet(104, u32(id), u32(names.length), ...names.flatMap((n) => [str(n), str(`-rw-r--r-- 1 u u 0 Jan 1 00:00 ${n}`), attrs(0o644)])),
  attrs: (id: number) => packet(105, u32(id), attrs(0o644)),
};

type Step = readonly ['c' | 's', Buffer];
type Ev = Omit<FileEvent, 'at' | 'type'>;

/** Feeds steps in order (each optionally re-chunked) and returns events without `at`/`type`. */
function run(steps: readonly Step[], chunker: (b: Buffer, i: number) => Buffer[] = (b) => [b], end = true): { events: Ev[]; broken: string | null; raw: FileEvent[] } {
  const raw: FileEvent[] = [];
  const o = new SftpObserver((e) => raw.push(e), { clock: () => 42 });
  steps.forEach(([dir, bytes], i) => {
    for (const piece of chunker(bytes, i)) (dir === 'c' ? o.fromClient(piece) : o.fromServer(piece));
  });
  if (end) o.end();
  return { events: raw.map(({ at: _at, type: _type, ...rest }) => rest), broken: o.broken, raw };
}

const hello: Step[] = [['c', C.init()], ['s', S.version()]];

function upload(pathName: string, h: string, data: Buffer, chunk: number, firstId: number): Step[] {
  const ids: number[] = [];
  const writes: Buffer[] = [];
  for (let off = 0, id = firstId + 1; off < data.length; off += chunk, id++) {
    writes.push(C.write(id, h, off, data.subarray(off, off + chunk)));
    ids.push(id);
  }
  // Pipelined: all WRITEs go out, replies come back in reverse order.
  return [
    ['c', C.open(firstId, pathName, W | CREAT | TRUNC, 0o644)],
    ['s', S.handle(firstId, h)],
    ['c', Buffer.concat(writes)],
    ['s', Buffer.concat(ids.reverse().map((id) => S.ok(id)))],
    ['c', C.close(firstId + 1000, h)],
    ['s', S.ok(firstId + 1000)],
  ];
}

function download(pathName: string, h: string, sizes: number[], firstId: number): Step[] {
  const steps: Step[] = [['c', C.open(firstId, pathName, R)], ['s', S.handle(firstId, h)]];
  let off = 0;
  let id = firstId + 1;
  for (const n of sizes) {
    steps.push(['c', C.read(id, h, off, 32768)], ['s', S.data(id, Buffer.alloc(n, 7))]);
    off += n;
    id++;
  }
  steps.push(['c', C.read(id, h, off, 32768)], ['s', S.status(id, 1, 'End of file')]);
  steps.push(['c', C.close(id + 1, h)], ['s', S.ok(id + 1)]);
  return steps;
}

const fileOps: Step[] = [
  ['c', C.mkdir(300, '/srv/new', 0o755)], ['s', S.ok(300)],
  ['c', C.mkdir(301, '/srv/exists')], ['s', S.status(301, 4, 'Failure')],
  ['c', C.remove(302, '/srv/old.txt')], ['s', S.ok(302)],
  ['c', C.remove(303, '/srv/missing')], ['s', S.status(303, 2, 'No such file')],
  ['c', C.rename(304, '/srv/a', '/srv/b')], ['s', S.ok(304)],
  ['c', C.extended(305, 'posix-rename@openssh.com', str('/srv/b'), str('/srv/c'))], ['s', S.ok(305)],
  ['c', C.rmdir(306, '/srv/new')], ['s', S.status(306, 3, 'not yours')],
  ['c', C.setstat(307, '/srv/c', 0o100600)], ['s', S.ok(307)],
  ['c', C.symlink(308, '/srv/c', '/srv/link')], ['s', S.ok(308)],
  ['c', C.stat(309, '/srv/c')], ['s', S.attrs(309)],
  ['c', C.lstat(310, '/srv/nope')], ['s', S.status(310, 2, 'No such file')],
  ['c', C.realpath(311, '.')], ['s', S.name(311, '/home/u')],
];

const fileOpsEvents: Ev[] = [
  { op: 'mkdir', path: '/srv/new', mode: '0755', result: 'ok' },
  { op: 'mkdir', path: '/srv/exists', result: 'failure' },
  { op: 'remove', path: '/srv/old.txt', result: 'ok' },
  { op: 'remove', path: '/srv/missing', result: 'no such file' },
  { op: 'rename', path: '/srv/a', to: '/srv/b', result: 'ok' },
  { op: 'rename', path: '/srv/b', to: '/srv/c', result: 'ok' },
  { op: 'rmdir', path: '/srv/new', result: 'permission denied: not yours' },
  { op: 'setstat', path: '/srv/c', mode: '0600', result: 'ok' },
  { op: 'symlink', path: '/srv/link', to: '/srv/c', result: 'ok' },
  { op: 'stat', path: '/srv/c', result: 'ok' },
  { op: 'stat', path: '/srv/nope', result: 'no such file' },
];

const payload = randomBytes(100_000);
/** A whole conversation used by the split tests. */
const conversation: Step[] = [
  ...hello,
  ...upload('/srv/up.bin', 'H1', payload.subarray(0, 5000), 700, 10),
  ...download('/srv/down.bin', 'H2', [1000, 333, 1], 100),
  ...fileOps,
  ['c', C.opendir(400, '/srv')], ['s', S.handle(400, 'D1')],
  ['c', C.readdir(401, 'D1')], ['s', S.name(401, 'a', 'b')],
  ['c', C.readdir(402, 'D1')], ['s', S.status(402, 1, 'End of file')],
  ['c', C.close(403, 'D1')], ['s', S.ok(403)],
];

describe('SftpObserver', () => {
  it('reports a multi-packet upload as one open, one write with the exact total, one close', () => {
    const { events, broken } = run([...hello, ...upload('/srv/up.bin', 'H1', payload, 32000, 1)]);
    expect(broken).toBeNull();
    expect(events).toEqual([
      { op: 'open', path: '/srv/up.bin', mode: 'w+create+trunc 0644', result: 'ok' },
      { op: 'write', path: '/srv/up.bin', bytes: 100_000, result: 'ok' },
      { op: 'close', path: '/srv/up.bin', result: 'ok' },
    ]);
  });

  it('reports a multi-packet download as one read with the exact total', () => {
    const { events, broken } = run([...hello, ...download('/srv/d.bin', 'h', [32768, 32768, 32768, 1696], 7)]);
    expect(broken).toBeNull();
    expect(events).toEqual([
      { op: 'open', path: '/srv/d.bin', mode: 'r', result: 'ok' },
      { op: 'read', path: '/srv/d.bin', bytes: 100_000, result: 'ok' },
      { op: 'close', path: '/srv/d.bin', result: 'ok' },
    ]);
  });

  it('counts only acknowledged writes and keeps the first write error', () => {
    const { events } = run([
      ...hello,
      ['c', C.open(1, '/f', R | W)], ['s', S.handle(1, 'h')],
      ['c', Buffer.concat([C.write(2, 'h', 0, Buffer.alloc(10)), C.write(3, 'h', 10, Buffer.alloc(20)), C.write(4, 'h', 30, Buffer.alloc(5))])],
      ['s', Buffer.concat([S.ok(2), S.status(3, 4, 'disk full'), S.status(4, 3, '')])],
      ['c', C.read(5, 'h', 0, 100)], ['s', S.data(5, Buffer.alloc(10))],
      ['c', C.close(6, 'h')], ['s', S.ok(6)],
    ]);
    expect(events).toEqual([
      { op: 'open', path: '/f', mode: 'rw', result: 'ok' },
      { op: 'read', path: '/f', bytes: 10, result: 'ok' },
      { op: 'write', path: '/f', bytes: 10, result: 'failure: disk full' },
      { op: 'close', path: '/f', result: 'ok' },
    ]);
  });

  it('reports a failed open with the status text and no close', () => {
    const { events } = run([
      ...hello,
      ['c', C.open(1, '/etc/shadow', R)], ['s', S.status(1, 3, 'Permission denied')],
      ['c', C.open(2, '/nope', W | CREAT, 0o600)], ['s', S.status(2, 2, 'No such file')],
      ['c', C.open(3, '/odd', R)], ['s', S.status(3, 77, 'what')],
    ]);
    expect(events).toEqual([
      { op: 'open', path: '/etc/shadow', mode: 'r', result: 'permission denied' },
      { op: 'open', path: '/nope', mode: 'w+create 0600', result: 'no such file' },
      { op: 'open', path: '/odd', mode: 'r', result: 'status 77: what' },
    ]);
  });

  it('reports mkdir, remove, rename, posix-rename, rmdir, setstat, symlink and stat when answered', () => {
    const { events, broken } = run([...hello, ...fileOps]);
    expect(broken).toBeNull();
    expect(events).toEqual(fileOpsEvents);
  });

  it('reports a directory listing once, at close, and fsetstat against the handle path', () => {
    const { events } = run([
      ...hello,
      ['c', C.opendir(1, '/srv')], ['s', S.handle(1, 'D')],
      ['c', C.readdir(2, 'D')], ['s', S.name(2, 'x')],
      ['c', C.readdir(3, 'D')], ['s', S.status(3, 1, 'End of file')],
      ['c', C.close(4, 'D')], ['s', S.ok(4)],
      ['c', C.opendir(5, '/root')], ['s', S.status(5, 3, 'Permission denied')],
      ['c', C.open(6, '/f', W | CREAT)], ['s', S.handle(6, 'F')],
      ['c', C.fsetstat(7, 'F', 0o640)], ['s', S.ok(7)],
      ['c', C.close(8, 'F')], ['s', S.ok(8)],
    ]);
    expect(events).toEqual([
      { op: 'readdir', path: '/srv', result: 'ok' },
      { op: 'readdir', path: '/root', result: 'permission denied' },
      { op: 'open', path: '/f', mode: 'w+create', result: 'ok' },
      { op: 'setstat', path: '/f', mode: '0640', result: 'ok' },
      { op: 'close', path: '/f', result: 'ok' },
    ]);
  });

  it('ignores unknown packet types and extended requests without breaking', () => {
    const { events, broken } = run([
      ...hello,
      ['c', packet(99, u32(1), str('??'))], ['s', packet(150, u32(1))],
      ['c', C.extended(2, 'statvfs@openssh.com', str('/'))], ['s', packet(201, u32(2), u64(1), u64(2))],
      ['c', packet(250)], ['s', packet(7)],
      ['c', C.mkdir(3, '/d')], ['s', S.ok(3)],
      ['s', S.ok(999)], // a reply nobody asked for
    ]);
    expect(broken).toBeNull();
    expect(events).toEqual([{ op: 'mkdir', path: '/d', result: 'ok' }]);
  });

  it('emits identical events however the byte stream is split', () => {
    const whole = run(conversation).events;
    expect(whole.length).toBe(3 + 3 + fileOpsEvents.length + 1);
    // One byte at a time.
    const bytewise = (b: Buffer): Buffer[] => [...b].map((x) => Buffer.from([x]));
    expect(run(conversation, bytewise).events).toEqual(whole);
    // Every step split into two pieces at every offset.
    conversation.forEach(([, bytes], i) => {
      const step = Math.max(1, Math.floor(bytes.length / 200)); // keep large steps affordable
      for (let k = 1; k < bytes.length; k += k < 64 ? 1 : step) {
        const got = run(conversation, (b, j) => (j === i ? [b.subarray(0, k), b.subarray(k)] : [b])).events;
        expect(got, `step ${i} split at ${k}`).toEqual(whole);
      }
    });
    // Pipelined: every request of fileOps in one chunk, then every reply in one chunk.
    const pipelined: Step[] = [
      ...hello,
      ['c', Buffer.concat(fileOps.filter(([d]) => d === 'c').map(([, b]) => b))],
      ['s', Buffer.concat(fileOps.filter(([d]) => d === 's').map(([, b]) => b))],
    ];
    expect(run(pipelined).events).toEqual(fileOpsEvents);
  });

  it('splits a single packet at every offset', () => {
    const pkt = C.write(2, 'h', 0, Buffer.alloc(1000, 1));
    const base: Step[] = [...hello, ['c', C.open(1, '/w', W)], ['s', S.handle(1, 'h')]];
    const tail: Step[] = [['s', S.ok(2)], ['c', C.close(3, 'h')], ['s', S.ok(3)]];
    const whole = run([...base, ['c', pkt], ...tail]).events;
    expect(whole).toContainEqual({ op: 'write', path: '/w', bytes: 1000, result: 'ok' });
    for (let k = 1; k < pkt.length; k++) {
      const steps: Step[] = [...base, ['c', pkt.subarray(0, k)], ['c', pkt.subarray(k)], ...tail];
      expect(run(steps).events).toEqual(whole);
    }
  });

  it('sets broken on garbage, zero or huge lengths and truncated strings, and never throws', () => {
    const cases: [string, Step[]][] = [
      ['huge length', [['c', Buffer.from([0xff, 0xff, 0xff, 0xff, 3, 0, 0])]]],
      ['over maxPacket', [['s', Buffer.concat([u32(300 * 1024), u8(103)])]]],
      ['zero length', [['c', Buffer.from([0, 0, 0, 0, 1, 2, 3])]]],
      ['ascii garbage', [['c', Buffer.from('SSH-2.0-hello\r\nGET / HTTP/1.1\r\n')]]],
      ['truncated path', [['c', packet(3, u32(1), u32(1000), Buffer.from('abc'))]]],
      ['truncated status', [['c', C.mkdir(1, '/x')], ['s', packet(101, u32(1))]]],
      ['DATA longer than its packet', [['c', C.open(1, '/f', R)], ['s', S.handle(1, 'h')], ['c', C.read(2, 'h', 0, 10)], ['s', packet(103, u32(2), u32(100), Buffer.alloc(3))]]],
      ['WRITE handle over 256 bytes', [['c', C.write(1, 'x'.repeat(300), 0, Buffer.alloc(4))]]],
      ['bad version', [['c', C.init()], ['s', S.version(6)]]],
    ];
    for (const [name, steps] of cases) {
      let r: ReturnType<typeof run> | undefined;
      expect(() => { r = run([...steps, ['c', C.mkdir(50, '/after')], ['s', S.ok(50)]]); }, name).not.toThrow();
      expect(r!.broken, name).toEqual(expect.any(String));
      expect(r!.events.filter((e) => e.path === '/after'), name).toEqual([]);
    }
  });

  it('does not hold a huge announced packet: only up to maxPacket', () => {
    const o = new SftpObserver(() => undefined, { maxPacket: 1024 });
    o.fromClient(Buffer.concat([u32(1020), u8(3)])); // within the cap: waits for the body
    expect(o.broken).toBeNull();
    const p = new SftpObserver(() => undefined, { maxPacket: 1024 });
    p.fromClient(Buffer.concat([u32(1021), u8(3)]));
    expect(p.broken).toMatch(/length/);
  });

  it('survives random garbage of every shape without throwing', () => {
    let seed = 1;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let t = 0; t < 300; t++) {
      const o = new SftpObserver(() => undefined);
      const bytes = Buffer.from(Array.from({ length: rnd(200) }, () => rnd(256)));
      // Plausible prefix sometimes, so the parser gets past framing.
      const msg = t % 2 ? Buffer.concat([u32(bytes.length + 1), u8(rnd(21) || 3), bytes]) : bytes;
      expect(() => { o.fromClient(msg); o.fromServer(msg); o.end(); o.fromClient(msg); }).not.toThrow();
    }
  });

  it('keeps many concurrent handles apart', () => {
    const n = 500;
    const steps: Step[] = [...hello];
    for (let i = 0; i < n; i++) steps.push(['c', C.open(i, `/f${i}`, W | CREAT)]);
    steps.push(['s', Buffer.concat(Array.from({ length: n }, (_, i) => S.handle(n - 1 - i, `h${n - 1 - i}`)))]);
    for (let i = 0; i < n; i++) steps.push(['c', C.write(10_000 + i, `h${i}`, 0, Buffer.alloc(i + 1))]);
    steps.push(['s', Buffer.concat(Array.from({ length: n }, (_, i) => S.ok(10_000 + i)))]);
    for (let i = 0; i < n; i++) steps.push(['c', C.close(20_000 + i, `h${i}`)]);
    steps.push(['s', Buffer.concat(Array.from({ length: n }, (_, i) => S.ok(20_000 + n - 1 - i)))]);
    const { events, broken } = run(steps);
    expect(broken).toBeNull();
    const writes = events.filter((e) => e.op === 'write');
    expect(writes).toHaveLength(n);
    for (const w of writes) expect(w.bytes).toBe(Number(w.path.slice(2)) + 1);
    expect(events.filter((e) => e.op === 'close')).toHaveLength(n);
    expect(events.filter((e) => e.op === 'open')).toHaveLength(n);
  });

  it('caps requests in flight', () => {
    const steps: Step[] = [...hello];
    for (let i = 0; i < 4097; i++) steps.push(['c', C.stat(i, '/x')]);
    expect(run(steps).broken).toMatch(/in flight/);
    expect(run(steps.slice(0, 4096 + 2)).broken).toBeNull();
  });

  it('reports open handles and unanswered requests as "channel closed" at end()', () => {
    const { events } = run([
      ...hello,
      ['c', C.open(1, '/a', R)], ['s', S.handle(1, 'A')],
      ['c', C.read(2, 'A', 0, 10)], ['s', S.data(2, Buffer.alloc(10))],
      ['c', C.open(3, '/b', W)], ['s', S.handle(3, 'B')],
      ['c', C.mkdir(4, '/c')],
      ['c', C.open(5, '/d', R)],
    ]);
    expect(events.slice(2)).toEqual([
      { op: 'mkdir', path: '/c', result: 'channel closed' },
      { op: 'open', path: '/d', mode: 'r', result: 'channel closed' },
      { op: 'read', path: '/a', bytes: 10, result: 'ok' },
      { op: 'close', path: '/a', result: 'channel closed' },
      { op: 'close', path: '/b', result: 'channel closed' },
    ]);
  });

  it('decodes paths as UTF-8 with replacement and caps them at 4096 characters', () => {
    const { events } = run([
      ...hello,
      ['c', C.mkdir(1, Buffer.from([0x2f, 0xc3, 0xa9, 0xff, 0x41]))], ['s', S.ok(1)],
      ['c', C.remove(2, `/${'x'.repeat(10_000)}`)], ['s', S.ok(2)],
    ]);
    expect(events[0]!.path).toBe('/é\uFFFDA');
    expect(events[1]!.path).toHaveLength(4096);
  });

  it('stamps events with the injected clock', () => {
    const { raw } = run([...hello, ['c', C.mkdir(1, '/d')], ['s', S.ok(1)]]);
    expect(raw).toEqual([{ type: 'file', at: 42, op: 'mkdir', path: '/d', result: 'ok' }]);
  });
});

// --- a real ssh2 client against OpenSSH's sftp-server ---------------------

const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

describe('SftpObserver on a real ssh2 + sftp-server session', () => {
  it.skipIf(!existsSync(SFTP_SERVER))(`observes fastPut, fastGet, mkdir, readdir, rename, unlink (needs ${SFTP_SERVER}; apt-get install openssh-server)`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wicket-sftp-'));
    const events: FileEvent[] = [];
    const observer = new SftpObserver((e) => events.push(e));
    let ended!: () => void;
    const channelDone = new Promise<void>((resolve) => { ended = resolve; });
    const hostKey = generateEd25519().private;
    const server = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
      conn.on('authentication', (ctx) => ctx.accept());
      conn.on('ready', () => {
        conn.on('session', (acceptSession) => {
          const session = acceptSession();
          session.on('subsystem', (accept, reject, info) => {
            if (info.name !== 'sftp') return reject();
            const ch = accept();
            const proc = spawn(SFTP_SERVER, [], { cwd: dir, stdio: ['pipe', 'pipe', 'ignore'] });
            ch.on('data', (d: Buffer) => { observer.fromClient(d); proc.stdin.write(d); });
            ch.on('end', () => proc.stdin.end());
            proc.stdout.on('data', (d: Buffer) => { observer.fromServer(d); ch.write(d); });
            proc.on('close', () => {
              observer.end();
              ended();
              try { ch.exit(0); ch.end(); } catch { /* client already gone */ }
            });
          });
        });
      });
      conn.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client = new ssh2.Client();
    try {
      const local = path.join(dir, 'local.bin');
      const back = path.join(dir, 'back.bin');
      const remote = path.join(dir, 'remote.bin');
      const sub = path.join(dir, 'sub');
      const moved = path.join(sub, 'moved.bin');
      const content = randomBytes(1024 * 1024);
      writeFileSync(local, content);
      await new Promise<void>((resolve, reject) => {
        client.once('ready', resolve).once('error', reject);
        client.connect({ host: '127.0.0.1', port, username: 'u', password: 'p', readyTimeout: 5000 });
      });
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((e, s) => (e ? reject(e) : resolve(s))));
      const call = (fn: (cb: (e?: Error | null) => void) => void): Promise<void> =>
        new Promise((resolve, reject) => fn((e) => (e ? reject(e) : resolve())));
      await call((cb) => sftp.fastPut(local, remote, cb));
      await call((cb) => sftp.fastGet(remote, back, cb));
      await call((cb) => sftp.mkdir(sub, cb));
      await call((cb) => sftp.rename(remote, moved, cb));
      await call((cb) => sftp.readdir(sub, (e) => cb(e)));
      await call((cb) => sftp.unlink(moved, cb));
      await call((cb) => sftp.unlink(path.join(dir, 'never-there'), (e) => cb(e ? null : new Error('unlink should fail'))));
      expect(readFileSync(back).equals(content)).toBe(true);
      sftp.end();
      await channelDone;

      expect(observer.broken).toBeNull();
      const seen = events.map(({ at: _at, type: _type, ...rest }) => rest);
      expect(seen).toEqual([
        { op: 'open', path: remote, mode: 'w+create+trunc', result: 'ok' },
        { op: 'write', path: remote, bytes: content.length, result: 'ok' },
        { op: 'close', path: remote, result: 'ok' },
        { op: 'open', path: remote, mode: 'r', result: 'ok' },
        { op: 'read', path: remote, bytes: content.length, result: 'ok' },
        { op: 'close', path: remote, result: 'ok' },
        { op: 'mkdir', path: sub, result: 'ok' },
        { op: 'rename', path: remote, to: moved, result: 'ok' },
        { op: 'readdir', path: sub, result: 'ok' },
        { op: 'remove', path: moved, result: 'ok' },
        { op: 'remove', path: path.join(dir, 'never-there'), result: 'no such file' },
      ]);
      for (const e of events) expect(typeof e.at).toBe('number');
    } finally {
      client.end();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 15_000);
});
