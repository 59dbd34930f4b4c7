import { describe, expect, it } from 'vitest';
import { ScpObserver, parseScpCommand } from '../../../protocols/ssh/scp.js';
import type { FileEvent } from '../../../src/session.js';

// --- rcp protocol builders -------------------------------------------------

const ACK = Buffer.from([0]);
const warn = (msg: string): Buffer => Buffer.from(`\x01${msg}\n`);
const fatal = (msg: string): Buffer => Buffer.from(`\x02${msg}\n`);
const line = (s: string): Buffer => Buffer.from(`${s}\n`);
const fileLine = (mode: string, size: number, name: string): Buffer => line(`C${mode} ${size} ${name}`);
const dirLine = (mode: string, name: string): Buffer => line(`D${mode} 0 ${name}`);
const END = line('E');
const TIMES = line('T1700000000 0 1700000001 0');

/** `snd` = bytes of the sending side, `rcv` = a response of the receiving side. */
type Step = readonly ['snd' | 'rcv', Buffer];
type Ev = Omit<FileEvent, 'at' | 'type'>;

/** One file as the sender transmits it: C line, ack, data + \0, ack. */
function sendFile(mode: string, name: string, data: Buffer, dataChunk = data.length || 1): Step[] {
  const steps: Step[] = [['snd', fileLine(mode, data.length, name)], ['rcv', ACK]];
  for (let off = 0; off < data.length; off += dataChunk) steps.push(['snd', data.subarray(off, off + dataChunk)]);
  steps.push(['snd', ACK], ['rcv', ACK]);
  return steps;
}

function run(command: string, steps: readonly Step[], chunker: (b: Buffer, i: number) => Buffer[] = (b) => [b], end = true): { events: Ev[]; broken: string | null; raw: FileEvent[] } {
  const raw: FileEvent[] = [];
  const o = new ScpObserver(command, (e) => raw.push(e), { clock: () => 7 });
  const upload = parseScpCommand(command)?.direction !== 'download';
  steps.forEach(([who, bytes], i) => {
    for (const piece of chunker(bytes, i)) {
      // Upload: the client sends, the server (sink) answers. Download: reversed.
      if ((who === 'snd') === upload) o.fromClient(piece);
      else o.fromServer(piece);
    }
  });
  if (end) o.end();
  return { events: raw.map(({ at: _at, type: _type, ...rest }) => rest), broken: o.broken, raw };
}

describe('parseScpCommand', () => {
  it('recognizes sink and source commands with their flags and paths', () => {
    expect(parseScpCommand('scp -t /tmp/')).toEqual({ direction: 'upload', recursive: false, path: '/tmp/', paths: ['/tmp/'], targetIsDir: false });
    expect(parseScpCommand("scp -r -f 'a b'")).toMatchObject({ direction: 'download', recursive: true, path: 'a b' });
    expect(parseScpCommand('scp -v -d -t -- /x')).toMatchObject({ direction: 'upload', recursive: false, path: '/x', targetIsDir: true });
    expect(parseScpCommand('/usr/bin/scp -prt "dir with \\"q\\""')).toMatchObject({ direction: 'upload', recursive: true, path: 'dir with "q"' });
    expect(parseScpCommand('scp -f -- /etc/hosts /etc/passwd')).toMatchObject({ path: '/etc/hosts', paths: ['/etc/hosts', '/etc/passwd'] });
    expect(parseScpCommand('scp -l 100 -t .')).toMatchObject({ direction: 'upload', path: '.' });
    expect(parseScpCommand('scp -l100 -f a\\ b')).toMatchObject({ direction: 'download', path: 'a b' });
    expect(parseScpCommand('scp /tmp -t')).toMatchObject({ direction: 'upload', path: '/tmp' }); // getopt permutes
    expect(parseScpCommand('scp -t -- -odd')).toMatchObject({ path: '-odd' });
    expect(parseScpCommand("scp -f '/tmp/*.log'")).toMatchObject({ path: '/tmp/*.log' });
  });

  it('returns null for anything that is not one plain scp -t/-f', () => {
    for (const c of [
      '', 'ls -la', 'scp', 'scp -t', 'scp /x', 'scp -t -f /x', 'scp -t a b', 'scpx -t /x', 'rsync -t /x',
      'scp -t /x; rm -rf /', 'scp -t /x && id', 'scp -t $(id)', 'scp -t `id`', 'scp -t "$HOME"', 'scp -t /x | cat',
      "scp -t 'unterminated", 'scp -Z -t /x', 'scp -t /x > /dev/null', 'scp -t /x #c', 'scp -l',
    ]) {
      expect(parseScpCommand(c), c).toBeNull();
    }
  });
});

describe('ScpObserver upload (scp -t)', () => {
  it('reports one write with the exact byte count of a multi-chunk file', () => {
    const data = Buffer.alloc(1_000_003, 0x61);
    const { events, broken } = run('scp -t /tmp/', [['rcv', ACK], ...sendFile('0644', 'big.bin', data, 65536)]);
    expect(broken).toBeNull();
    expect(events).toEqual([{ op: 'write', path: '/tmp/big.bin', bytes: 1_000_003, mode: '0644', result: 'ok' }]);
  });

  it('joins names against the target', () => {
    const file = (target: string, name: string, flags = ''): string | undefined =>
      run(`scp ${flags} -t ${target}`, [['rcv', ACK], ...sendFile('0600', name, Buffer.from('x'))]).events[0]?.path;
    expect(file('/tmp/', 'a')).toBe('/tmp/a');
    expect(file('.', 'a')).toBe('./a');
    expect(file('/etc/app.conf', 'app.conf')).toBe('/etc/app.conf');
    expect(file('/etc', 'a', '-d')).toBe('/etc/a');
    expect(file('/srv/data', 'a')).toBe('/srv/data/a'); // ambiguous: kept as target/name
  });

  it('reports mkdir for D lines and nests paths, with T lines and empty files', () => {
    const steps: Step[] = [
      ['rcv', ACK],
      ['snd', TIMES], ['rcv', ACK],
      ['snd', dirLine('0755', 'proj')], ['rcv', ACK],
      ...sendFile('0644', 'readme', Buffer.from('hello')),
      ['snd', dirLine('0700', 'sub')], ['rcv', ACK],
      ['snd', TIMES], ['rcv', ACK],
      ...sendFile('0600', 'empty', Buffer.alloc(0)),
      ['snd', END], ['rcv', ACK],
      ...sendFile('0644', 'after', Buffer.from('123')),
      ['snd', END], ['rcv', ACK],
    ];
    const { events, broken } = run('scp -r -p -t /srv/', steps);
    expect(broken).toBeNull();
    expect(events).toEqual([
      { op: 'mkdir', path: '/srv/proj', mode: '0755', result: 'ok' },
      { op: 'write', path: '/srv/proj/readme', bytes: 5, mode: '0644', result: 'ok' },
      { op: 'mkdir', path: '/srv/proj/sub', mode: '0700', result: 'ok' },
      { op: 'write', path: '/srv/proj/sub/empty', bytes: 0, mode: '0600', result: 'ok' },
      { op: 'write', path: '/srv/proj/after', bytes: 3, mode: '0644', result: 'ok' },
    ]);
  });

  it('reports errors from the sink as results, and skips a refused file without data', () => {
    const steps: Step[] = [
      ['rcv', ACK],
      ['snd', fileLine('0644', 4, 'denied')], ['rcv', warn('scp: /root/denied: Permission denied')],
      ['snd', fileLine('0644', 4, 'full')], ['rcv', ACK], ['snd', Buffer.from('abcd')], ['snd', ACK],
      ['rcv', warn('scp: /root/full: write: No space left on device')],
      ['snd', dirLine('0755', 'd')], ['rcv', warn('scp: /root/d: Permission denied')],
      ['snd', fileLine('0644', 2, 'ok')], ['rcv', ACK], ['snd', Buffer.from('hi')], ['snd', ACK], ['rcv', ACK],
    ];
    const { events, broken } = run('scp -r -t /root/', steps);
    expect(broken).toBeNull();
    expect(events).toEqual([
      { op: 'write', path: '/root/denied', bytes: 0, mode: '0644', result: 'scp: /root/denied: Permission denied' },
      { op: 'write', path: '/root/full', bytes: 4, mode: '0644', result: 'scp: /root/full: write: No space left on device' },
      { op: 'mkdir', path: '/root/d', mode: '0755', result: 'scp: /root/d: Permission denied' },
      { op: 'write', path: '/root/ok', bytes: 2, mode: '0644', result: 'ok' },
    ]);
  });

  it('reports a source read failure sent after the data, and a failure at start', () => {
    const { events } = run('scp -t /tmp/', [
      ['rcv', ACK],
      ['snd', fileLine('0644', 3, 'f')], ['rcv', ACK], ['snd', Buffer.from('abc')], ['snd', warn('scp: f: Input/output error')], ['rcv', ACK],
    ]);
    expect(events).toEqual([{ op: 'write', path: '/tmp/f', bytes: 3, mode: '0644', result: 'scp: f: Input/output error' }]);
    const start = run('scp -d -t /nodir', [['rcv', warn('scp: /nodir: Not a directory')]]);
    expect(start.events).toEqual([{ op: 'write', path: '/nodir', result: 'scp: /nodir: Not a directory' }]);
  });

  it('stops at a fatal response', () => {
    const { events, broken } = run('scp -t /tmp/', [
      ['rcv', ACK],
      ['snd', fileLine('0644', 3, 'x')], ['rcv', fatal('scp: protocol error: something')],
      ['snd', fileLine('0644', 3, 'y')],
    ]);
    expect(broken).toBeNull();
    expect(events).toEqual([{ op: 'write', path: '/tmp/x', bytes: 0, mode: '0644', result: 'scp: protocol error: something' }]);
  });

  it('reports a transfer cut short at end() with the bytes seen so far', () => {
    const partial = run('scp -t /tmp/', [['rcv', ACK], ['snd', fileLine('0644', 100, 'cut')], ['rcv', ACK], ['snd', Buffer.alloc(40)]]);
    expect(partial.events).toEqual([{ op: 'write', path: '/tmp/cut', bytes: 40, mode: '0644', result: 'channel closed' }]);
    const unanswered = run('scp -t /tmp/', [['rcv', ACK], ['snd', fileLine('0644', 100, 'never')]]);
    expect(unanswered.events).toEqual([{ op: 'write', path: '/tmp/never', bytes: 0, mode: '0644', result: 'channel closed' }]);
  });
});

describe('ScpObserver download (scp -f)', () => {
  it('reports one read per file with the source path', () => {
    const data = Buffer.alloc(300_000, 1);
    const { events, broken } = run('scp -f /etc/hosts', [['rcv', ACK], ['snd', TIMES], ['rcv', ACK], ...sendFile('0644', 'hosts', data, 32768)]);
    expect(broken).toBeNull();
    expect(events).toEqual([{ op: 'read', path: '/etc/hosts', bytes: 300_000, mode: '0644', result: 'ok' }]);
  });

  it('resolves globbed and multiple sources, recursion and sender-side errors', () => {
    const steps: Step[] = [
      ['rcv', ACK],
      ['snd', warn('scp: /var/log/missing: No such file or directory')],
      ...sendFile('0640', 'a.log', Buffer.from('aaa')),
      ['snd', dirLine('0755', 'etc')], ['rcv', ACK],
      ...sendFile('0600', 'conf', Buffer.from('c')),
      ['snd', END], ['rcv', ACK],
    ];
    const { events } = run("scp -r -f '/var/log/*.log' /srv/etc/", steps);
    expect(events).toEqual([
      { op: 'read', path: '/var/log/*.log', bytes: 0, result: 'scp: /var/log/missing: No such file or directory' },
      { op: 'read', path: '/var/log/a.log', bytes: 3, mode: '0640', result: 'ok' },
      { op: 'readdir', path: '/srv/etc/', mode: '0755', result: 'ok' },
      { op: 'read', path: '/srv/etc/conf', bytes: 1, mode: '0600', result: 'ok' },
    ]);
  });

  it('records a client-side refusal as the result', () => {
    const { events } = run('scp -f /data/x', [['rcv', ACK], ['snd', fileLine('0644', 1, 'x')], ['rcv', warn('scp: ./x: Permission denied')]]);
    expect(events).toEqual([{ op: 'read', path: '/data/x', bytes: 0, mode: '0644', result: 'scp: ./x: Permission denied' }]);
  });
});

describe('ScpObserver robustness', () => {
  const session: Step[] = [
    ['rcv', ACK],
    ['snd', TIMES], ['rcv', ACK],
    ['snd', dirLine('0755', 'd')], ['rcv', ACK],
    ...sendFile('0644', 'one', Buffer.alloc(300, 3)),
    ['snd', fileLine('0644', 5, 'no')], ['rcv', warn('scp: d/no: Permission denied')],
    ...sendFile('0644', 'two', Buffer.alloc(17, 4)),
    ['snd', END], ['rcv', ACK],
  ];

  it('emits identical events however the streams are split', () => {
    for (const cmd of ['scp -r -t /up/', 'scp -r -f /down/d']) {
      const whole = run(cmd, session).events;
      expect(whole).toHaveLength(4);
      expect(run(cmd, session, (b) => [...b].map((x) => Buffer.from([x]))).events).toEqual(whole);
      session.forEach(([, bytes], i) => {
        for (let k = 1; k < bytes.length; k++) {
          expect(run(cmd, session, (b, j) => (j === i ? [b.subarray(0, k), b.subarray(k)] : [b])).events, `${cmd} step ${i} at ${k}`).toEqual(whole);
        }
      });
      // The data, its trailing \0 and nothing else coalesced into one chunk.
      const merged: Step[] = [];
      for (const s of session) {
        const last = merged[merged.length - 1];
        if (last && last[0] === s[0] && s[0] === 'snd' && !last[1].toString('latin1').endsWith('\n')) merged[merged.length - 1] = ['snd', Buffer.concat([last[1], s[1]])];
        else merged.push(s);
      }
      expect(run(cmd, merged).events).toEqual(whole);
    }
  });

  it('sets broken without throwing on garbage and protocol violations', () => {
    const cases: [string, string, Step[]][] = [
      ['garbage line', 'scp -t /x/', [['rcv', ACK], ['snd', line('hello world')]]],
      ['binary garbage', 'scp -t /x/', [['rcv', ACK], ['snd', Buffer.from([0xff, 0, 0x10, 0x0a])]]],
      ['bad mode', 'scp -t /x/', [['rcv', ACK], ['snd', line('C0999 1 a')]]],
      ['missing name separator', 'scp -t /x/', [['rcv', ACK], ['snd', line('C0644 1')]]],
      ['huge size', 'scp -t /x/', [['rcv', ACK], ['snd', line('C0644 99999999999999999999999 a')]]],
      ['bad T line', 'scp -t /x/', [['rcv', ACK], ['snd', line('Tnow')]]],
      ['endless line', 'scp -t /x/', [['rcv', ACK], ['snd', Buffer.alloc(10_000, 0x43)]]],
      ['endless error line', 'scp -t /x/', [['rcv', Buffer.concat([Buffer.from([1]), Buffer.alloc(10_000, 0x41)])]]],
      ['sender did not wait', 'scp -t /x/', [['rcv', ACK], ['snd', Buffer.concat([fileLine('0644', 3, 'a'), Buffer.from('abc')])]]],
      ['sender before start', 'scp -t /x/', [['snd', fileLine('0644', 3, 'a')]]],
      ['unsolicited response', 'scp -t /x/', [['rcv', ACK], ['rcv', ACK]]],
      ['bad trailer', 'scp -t /x/', [['rcv', ACK], ...sendFile('0644', 'a', Buffer.from('abc')).slice(0, 3), ['snd', Buffer.from([9])]]],
      ['not scp at all', 'bash -c id', [['rcv', ACK], ...sendFile('0644', 'a', Buffer.from('abc'))]],
    ];
    for (const [name, cmd, steps] of cases) {
      let r: ReturnType<typeof run> | undefined;
      expect(() => { r = run(cmd, steps); }, name).not.toThrow();
      expect(r!.broken, name).toEqual(expect.any(String));
    }
  });

  it('never throws on random bytes in either direction', () => {
    let seed = 3;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let t = 0; t < 300; t++) {
      const o = new ScpObserver(t % 2 ? 'scp -r -t /x' : 'scp -f /y', () => undefined);
      const alphabet = [0, 1, 2, 0x0a, 0x43, 0x44, 0x45, 0x54, 0x20, 0x30, 0x36, 0x34];
      expect(() => {
        for (let i = 0; i < 20; i++) {
          const b = Buffer.from(Array.from({ length: rnd(40) }, () => (rnd(3) ? alphabet[rnd(alphabet.length)]! : rnd(256))));
          (rnd(2) ? o.fromClient(b) : o.fromServer(b));
        }
        o.end();
        o.fromClient(Buffer.from('x'));
      }).not.toThrow();
    }
  });

  it('stamps events with the injected clock and ignores input after end()', () => {
    const raw: FileEvent[] = [];
    const o = new ScpObserver('scp -t /t/', (e) => raw.push(e), { clock: () => 99 });
    o.fromServer(ACK);
    o.fromClient(fileLine('0644', 1, 'a'));
    o.fromServer(ACK);
    o.fromClient(Buffer.from('z\0'));
    o.fromServer(ACK);
    o.end();
    o.fromClient(fileLine('0644', 1, 'b'));
    o.end();
    expect(raw).toEqual([{ type: 'file', at: 99, op: 'write', path: '/t/a', bytes: 1, mode: '0644', result: 'ok' }]);
  });
});
