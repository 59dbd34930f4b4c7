import pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { REDACTED, TypedInput, type TypedOptions } from '../../../recordings/typed.js';

const PROMPT = '$ ';

/** A TypedInput with a fake clock and sinks that keep what they were given. */
function harness(opts: TypedOptions = {}) {
  let now = 1_000;
  const inputs: Buffer[] = [];
  const outputs: Buffer[] = [];
  const commands: Array<{ command: string; at: number }> = [];
  const t = new TypedInput(
    { input: (b) => inputs.push(Buffer.from(b)), output: (b) => outputs.push(b) },
    (command, at) => commands.push({ command, at }),
    { clock: () => now, ...opts },
  );
  return {
    t,
    /** Client keystrokes, 10 ms after the previous event. */
    type(s: string | Buffer): void {
      now += 10;
      t.fromClient(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
    },
    /** Server output, 1 ms after the previous event. */
    echo(s: string | Buffer): void {
      now += 1;
      t.fromServer(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
    },
    /** Pairs of [keystrokes, what a bash-like remote writes back]. */
    run(steps: ReadonlyArray<readonly [string, string]>): void {
      for (const [keys, out] of steps) {
        this.type(keys);
        if (out !== '') this.echo(out);
      }
    },
    advance(ms: number): void {
      now += ms;
    },
    get now(): number {
      return now;
    },
    input: (): string => Buffer.concat(inputs).toString('utf8'),
    inputs,
    output: (): string => Buffer.concat(outputs).toString('utf8'),
    commands: (): string[] => commands.map((c) => c.command),
    times: (): number[] => commands.map((c) => c.at),
  };
}

/** Enter, then bash's newline, some command output and the next prompt. */
const ENTER = ['\r', `\r\nout\r\n${PROMPT}`] as const;

describe('TypedInput: command reconstruction', () => {
  it('plain typing: held until echoed, one command at the time of Enter', () => {
    const h = harness();
    h.echo(PROMPT);
    h.type('ls -l');
    expect(h.input()).toBe(''); // not echoed yet: nothing recorded
    h.echo('ls -l');
    expect(h.input()).toBe('ls -l');
    h.type('\r');
    const enterAt = h.now;
    h.echo(`\r\ntotal 0\r\n${PROMPT}`);
    expect(h.commands()).toEqual(['ls -l']);
    expect(h.times()).toEqual([enterAt]);
    expect(h.input()).toBe('ls -l\r');
    expect(h.output()).toBe(`${PROMPT}ls -l\r\ntotal 0\r\n${PROMPT}`);
  });

  it('backspace (DEL and BS)', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['echo hx', 'echo hx'], ['\x7f', '\b\x1b[K'], ['i thexx', 'i thexx'], ['\x08\x08', '\b \b\b \b'], ['re', 're'], ENTER]);
    expect(h.commands()).toEqual(['echo hi there']);
    expect(h.input()).toBe('echo hx\x7fi thexx\x08\x08re\r');
  });

  it('Ctrl-U discards the line before the cursor', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['rm -rf /', 'rm -rf /'], ['\x15', `\r${PROMPT}\x1b[K`], ['ls', 'ls'], ENTER]);
    expect(h.commands()).toEqual(['ls']);
  });

  it('Ctrl-W deletes the word before the cursor', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['echo abc def', 'echo abc def'], ['\x17', '\b\b\b\x1b[K'], ['xyz', 'xyz'], ENTER]);
    expect(h.commands()).toEqual(['echo abc xyz']);
  });

  it('left arrow then insert, right arrow, Home/End, Ctrl-A/Ctrl-E, Delete, SS3 arrows', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([
      ['ech', 'ech'],
      ['\x1b[D', '\b'],
      ['x', 'xh\b'], // bash inserts: the char, the rest of the line, back to the cursor
      ['\x7f', '\b\x1b[1P'],
      ['\x1b[C', 'h'],
      ['o hi', 'o hi'],
      ['\x01', '\b'.repeat(7)], // Ctrl-A
      ['\x1b[3~', '\x1b[1P'], // Delete: "cho hi"
      ['e', 'echo hi\b\b\b\b\b\b'],
      ['\x05', 'cho hi'], // Ctrl-E
      ['\x1bOD\x1bOD', '\b\b'], // SS3 left x2
      ['X', 'Xhi\b\b'],
      ['\x1b[H', '\b'.repeat(6)], // Home
      ['\x1b[F', 'echo Xhi'], // End
      ENTER,
    ]);
    expect(h.commands()).toEqual(['echo Xhi']);
  });

  it('falls back to the keystrokes when the screen line is unusable (a wrapped long line)', () => {
    const h = harness();
    h.echo(PROMPT);
    // A 20-column terminal: bash continues the line on the next row, which overwrites the prompt here.
    h.run([['echo 0123456789abcdefghi', 'echo 0123456789abc\rdefghi'], ['\x7f', '\b\x1b[K'], ['j', 'j'], ENTER]);
    expect(h.commands()).toEqual(['echo 0123456789abcdefghj']);
  });

  it('a burst of keys typed before any echo, drawn key by key', () => {
    const h = harness();
    h.echo(PROMPT);
    h.type('ech\x1b[Dx\x7f\x1b[Co hi\x01\x1b[3~e\x05\x1bOD\x1bODX\r');
    h.echo('ech\bxh\b\b\x1b[1Ph\bho hi\b\b\b\b\b\b\b\x1b[1Pecho hi\b\b\b\b\b\bcho hi\b\bXhi\b\b');
    h.echo(`\r\nXhi\r\n${PROMPT}`);
    expect(h.commands()).toEqual(['echo Xhi']);
  });

  it('tab completion: the completed text comes from the echo', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['sys', 'sys'], ['\t', 'temctl '], ['status', 'status'], ENTER]);
    expect(h.commands()).toEqual(['systemctl status']);
    expect(h.input()).toBe('sys\tstatus\r');
  });

  it('history (up arrow): the recalled line comes from the redraw', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['echo one', 'echo one'], ENTER]);
    h.run([['\x1b[A', 'echo one'], ENTER]); // recall on an empty line
    h.run([['xx', 'xx'], ['\x1b[A', `\r${PROMPT}echo one\x1b[K`], ['\x1b[D\x1b[D\x1b[D', '\b\b\b'], ['\x17', '\b\b\b\b\bone\x1b[K\b\b\b'], ENTER]);
    expect(h.commands()).toEqual(['echo one', 'echo one', 'one']);
  });

  it('Ctrl-C abandons the line; empty lines produce nothing', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['rm -rf /', 'rm -rf /'], ['\x03', `^C\r\n${PROMPT}`]]);
    h.run([['\r', `\r\n${PROMPT}`], ['   \r', `   \r\n${PROMPT}`]]);
    h.run([['ls', 'ls'], ENTER]);
    expect(h.commands()).toEqual(['ls']);
    expect(h.input()).toBe('rm -rf /\x03\r   \rls\r');
  });

  it('a line begun with a key that types nothing starts at the prompt shown later', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['cat', 'cat'], ['\r', '\r\n'], ['\x04', PROMPT], ['ls', 'ls'], ENTER]); // Ctrl-D ends cat
    expect(h.commands()).toEqual(['cat', 'ls']);
  });

  it('a multi-line paste gives one command per line', () => {
    const h = harness();
    h.echo(PROMPT);
    h.type('\x1b[200~ls\rpwd\r\x1b[201~');
    // bash handles one line at a time: echo, output, prompt, echo of the next line.
    h.echo(`ls\r\na.txt  pwd.txt\r\n${PROMPT}`);
    h.echo(`pwd\r\n/tmp\r\n${PROMPT}`);
    expect(h.commands()).toEqual(['ls', 'pwd']);
    expect(h.input()).toBe('\x1b[200~ls\rpwd\r\x1b[201~');
    expect(h.t.heldBytes).toBe(0);
  });

  it('a paste with CR LF line ends, echoed in one burst', () => {
    const h = harness();
    h.echo(PROMPT);
    h.type('echo a\r\necho b\r\n');
    h.echo(`echo a\r\na\r\n${PROMPT}echo b\r\nb\r\n${PROMPT}`);
    expect(h.commands()).toEqual(['echo a', 'echo b']);
  });

  it('full-screen programs (alternate screen) produce no commands', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['vim notes.txt', 'vim notes.txt'], ['\r', '\r\n']]);
    h.echo('\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n"notes.txt" [New]\x1b[1;1H');
    h.run([
      ['ihello\r', '\x1b[24;1H-- INSERT --\x1b[1;1Hhello\r\n'],
      ['world', 'world'],
      ['\x1b', '\x1b[24;1H\x1b[K\x1b[2;5H'],
    ]);
    h.advance(300); // a lone ESC followed by a pause is the Esc key
    h.run([[':wq\r', '\x1b[24;1H:wq\r"notes.txt" 2L written']]);
    h.echo(`\x1b[?1049l\r${PROMPT}`);
    h.run([['ls', 'ls'], ENTER]);
    expect(h.commands()).toEqual(['vim notes.txt', 'ls']);
    expect(h.t.heldBytes).toBe(0);
    expect(h.input()).toContain('hello');
    expect(h.input()).toContain(':wq');
  });

  it('lines are capped at maxLine characters', () => {
    const h = harness({ maxLine: 8, maxHeld: 100_000 });
    h.echo(PROMPT);
    const long = 'echo ' + 'a'.repeat(50);
    h.run([[long, long], ENTER]);
    expect(h.commands()).toEqual(['echo aaa']);
  });

  it('UTF-8 characters are single cells, also split across chunks', () => {
    const h = harness();
    h.echo(PROMPT);
    const word = Buffer.from('echo héllo→', 'utf8');
    for (const b of word) h.type(Buffer.from([b]));
    for (const b of word) h.echo(Buffer.from([b]));
    h.run([['\x7f', '\b\x1b[K'], ENTER]);
    expect(h.commands()).toEqual(['echo héllo']);
  });

  it('the same commands whatever the chunking of either stream', () => {
    const keys = 'echo hx\x7fi\r\x1b[A\x1b[D\x1b[Dbye \x05\r';
    const out = `echo hx\b\x1b[Ki\r\nhi\r\n${PROMPT}echo hi\b\bbye hi\b\b\b\b\b\b\r\nbye hi\r\n${PROMPT}`;
    for (let cut = 0; cut <= keys.length; cut++) {
      for (const outCut of [0, 7, 9, 12, 20, 30, out.length]) {
        const h = harness();
        h.echo(PROMPT);
        // The keystroke chunks all arrive before any echo (worst case for the matcher).
        h.type(keys.slice(0, cut));
        h.type(keys.slice(cut));
        h.echo(out.slice(0, outCut));
        h.echo(out.slice(outCut));
        expect(h.commands(), `cut ${cut}/${outCut}`).toEqual(['echo hi', 'echo bye hi']);
        expect(h.input()).toBe(keys);
      }
    }
  });
});

describe('TypedInput: redaction of unechoed input', () => {
  it('sudo password: recorded as a marker, no command, next command normal', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['sudo ls', 'sudo ls'], ['\r', '\r\n[sudo] password for alice: ']]);
    h.type('hunter2');
    expect(h.input()).toBe('sudo ls\r');
    h.type('\r');
    h.echo(`\r\nfile1\r\n${PROMPT}`);
    h.run([['whoami', 'whoami'], ENTER]);
    expect(h.commands()).toEqual(['sudo ls', 'whoami']);
    expect(h.input()).toBe(`sudo ls\r${REDACTED}\rwhoami\r`);
    expect(h.input()).not.toContain('hunter');
  });

  it('read -s: no echo and no newline, only the next prompt', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['read -s x', 'read -s x'], ['\r', '\r\n']]);
    h.run([['echo', ''], ['\r', PROMPT]]); // the secret is the prefix of the next command
    h.run([['echo done', 'echo done'], ENTER]);
    expect(h.commands()).toEqual(['read -s x', 'echo done']);
    expect(h.input()).toBe(`read -s x\r${REDACTED}\recho done\r`);
  });

  it('a silent read followed by nothing: the next line after a pause does not release it', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['read -s x; read y', 'read -s x; read y'], ['\r', '\r\n']]);
    h.type('echo\r');
    h.advance(500);
    h.run([['echo', 'echo'], ['\r', '\r\n']]);
    expect(h.input()).toBe(`read -s x; read y\r${REDACTED}\recho\r`);
    expect(h.commands()).toEqual(['read -s x; read y', 'echo']); // what `read y` read is a line like any other
  });

  it('Ctrl-C on a password prompt is redacted too', () => {
    const h = harness();
    h.echo('Password: ');
    h.run([['s3cret', ''], ['\x03', '^C\r\n']]);
    expect(h.input()).toBe(`${REDACTED}\x03`);
    expect(h.commands()).toEqual([]);
  });

  it('unechoed input held too long is redacted by flush(), never written verbatim', () => {
    const h = harness({ holdMs: 2000 });
    h.echo('Password: ');
    h.type('abc');
    h.advance(1500);
    h.t.flush();
    expect(h.input()).toBe('');
    h.advance(600);
    h.t.flush();
    expect(h.input()).toBe(REDACTED);
    expect(h.t.heldBytes).toBe(0);
    h.type('def'); // the rest of the same password
    h.type('\r');
    h.echo('\r\n');
    expect(h.input()).toBe(`${REDACTED}\r`);
    expect(h.commands()).toEqual([]);
  });

  it('unechoed input beyond maxHeld bytes is redacted at once', () => {
    const h = harness({ maxHeld: 16 });
    h.echo('Password: ');
    h.type('x'.repeat(40));
    expect(h.t.heldBytes).toBeLessThanOrEqual(16);
    expect(h.input()).toBe(REDACTED);
    expect(h.input()).not.toContain('x');
  });

  it('end() redacts what was never echoed and submits nothing partial', () => {
    const h = harness();
    h.echo(PROMPT);
    h.run([['ls', 'ls'], ['\r', ''], ['secret', '']]);
    h.t.end();
    expect(h.commands()).toEqual(['ls']); // submitted and echoed, its newline never came
    expect(h.input()).toBe(`ls\r${REDACTED}`);
    h.type('more');
    h.echo('more');
    expect(h.input()).toBe(`ls\r${REDACTED}`);
  });

  it('control keys need no echo', () => {
    const h = harness();
    h.echo(PROMPT);
    h.type('\x1b[A');
    h.type('\t');
    expect(h.input()).toBe('\x1b[A\t');
  });

  it('random garbage never throws and memory stays bounded', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = [0x1b, 0x5b, 0x4f, 0x0d, 0x0a, 0x7f, 0x08, 0x03, 0x15, 0x17, 0x3f, 0x31, 0x30, 0x34, 0x39, 0x68, 0x6c, 0xc3, 0xa9, 0xe2, 0x07, 0x5d];
    const chunk = (): Buffer => {
      const b = Buffer.alloc(rnd(200));
      for (let i = 0; i < b.length; i++) b[i] = rnd(2) === 0 ? alphabet[rnd(alphabet.length)]! : rnd(256);
      return b;
    };
    for (let round = 0; round < 12; round++) {
      const h = harness({ maxHeld: 256 });
      for (let i = 0; i < 150; i++) {
        const r = rnd(10);
        if (r < 4) h.type(chunk());
        else if (r < 9) h.echo(chunk());
        else {
          h.advance(rnd(3000));
          h.t.flush();
        }
        expect(h.t.heldBytes).toBeLessThanOrEqual(256 + 200);
      }
      h.t.end();
      expect(h.t.heldBytes).toBe(0);
      for (const c of h.commands()) expect(c.length).toBeLessThanOrEqual(4096);
    }
  });

  it('keystrokes with no echo at all never reach the recorder verbatim', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const h = harness();
    h.echo('Password: ');
    let typed = '';
    for (let i = 0; i < 200; i++) {
      const s = String.fromCharCode(0x21 + rnd(94)).repeat(1 + rnd(3));
      typed += s;
      h.type(s);
      if (rnd(10) === 0) {
        h.type('\r');
        h.echo('\r\nPassword: ');
      }
      if (rnd(15) === 0) {
        h.advance(2500);
        h.t.flush();
      }
    }
    h.t.end();
    const recorded = h.input().split(REDACTED).join('');
    expect(recorded).toMatch(/^\r*$/);
    expect(typed.length).toBeGreaterThan(0);
  });
});

describe('TypedInput against a real bash in a pty', () => {
  it('reconstructs commands and keeps a read -s secret off the recording', async () => {
    const inputs: Buffer[] = [];
    const commands: string[] = [];
    const t = new TypedInput(
      { input: (b) => inputs.push(Buffer.from(b)), output: () => {} },
      (c) => commands.push(c),
    );
    const p = pty.spawn('/bin/bash', ['--norc', '--noprofile', '-i'], {
      name: 'xterm',
      cols: 200,
      rows: 24,
      cwd: '/',
      env: { TERM: 'xterm', PS1: PROMPT, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/', HISTFILE: '/dev/null' },
    });
    let out = '';
    p.onData((d) => {
      out += d;
      t.fromServer(Buffer.from(d, 'utf8'));
    });
    const count = (s: string): number => out.split(s).length - 1;
    const waitFor = async (what: string, pred: () => boolean): Promise<void> => {
      for (let waited = 0; !pred(); waited += 10) {
        if (waited > 5000) throw new Error(`timed out waiting for ${what}; output so far: ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const send = (s: string): void => {
      t.fromClient(Buffer.from(s, 'utf8'));
      p.write(s);
    };
    /** Types `s`, then waits until output has grown and satisfies `pred`. */
    const step = async (s: string, what: string, pred: () => boolean): Promise<void> => {
      const before = out.length;
      send(s);
      await waitFor(what, () => out.length > before && pred());
    };
    const nextPrompt = async (s: string): Promise<void> => {
      const n = count(PROMPT);
      await step(s, 'prompt', () => count(PROMPT) > n);
    };
    try {
      await waitFor('first prompt', () => count(PROMPT) >= 1);
      await step('echo hi', 'echo', () => out.includes('echo hi'));
      await nextPrompt('\r');
      await step('echo hx', 'echo', () => out.includes('echo hx'));
      await step('\x7f', 'erase', () => true);
      await step('i there', 'echo', () => out.includes('i there'));
      await nextPrompt('\r');
      // -p prints its prompt after the terminal's echo is off, so typing after it is never echoed.
      await step("read -s -p 'pw: ' x\r", 'read prompt', () => count('pw: ') >= 2);
      send('s3cr3tpw');
      await new Promise((r) => setTimeout(r, 50));
      await nextPrompt('\r');
      await step('echo done\r', 'done', () => out.includes('done\r\n') && out.endsWith(PROMPT));
      t.end();
    } finally {
      p.kill();
    }
    const recorded = Buffer.concat(inputs).toString('utf8');
    expect(out).not.toContain('s3cr3tpw');
    expect(commands).toEqual(['echo hi', 'echo hi there', "read -s -p 'pw: ' x", 'echo done']);
    expect(recorded).not.toContain('s3cr');
    expect(recorded).toContain(REDACTED);
    expect(recorded).toContain('echo hx\x7fi there\r');
  });
});
