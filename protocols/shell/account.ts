/**
 * Local accounts for shell targets, read from /etc/passwd and /etc/group
 * (parsed here: no native NSS binding), with Node's userInfo() as the
 * fallback for the broker's own account.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { WicketError } from '../../src/errors.js';

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

/** /etc/passwd lines `name:pw:uid:gid:gecos:home:shell`; malformed and NIS (+/-) lines are skipped. */
export function parsePasswd(text: string): Account[] {
  const out: Account[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] === '' || f[0]!.startsWith('#') || /^[+-]/.test(f[0]!)) continue;
    if (!/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]!.trim() });
  }
  return out;
}

/** Supplementary gids for `user` from /etc/group lines `name:pw:gid:m1,m2`, primary gid first. */
export function groupsOf(text: string, user: string, primaryGid: number): number[] {
  const gids = new Set<number>([primaryGid]);
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2]!)) continue;
    if (f[3]!.trim().split(',').includes(user)) gids.add(Number(f[2]));
  }
  return [...gids];
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function lookupAccount(user: string | undefined): Account {
  const accounts = parsePasswd(readText('/etc/passwd'));
  if (user !== undefined) {
    const a = accounts.find((x) => x.name === user);
    if (!a) throw new WicketError('WICKET_ERR_CONFIG', `shell target user '${user}' does not exist in /etc/passwd`);
    return a;
  }
  const uid = process.getuid!();
  const own = accounts.find((x) => x.uid === uid);
  if (own) return own;
  try {
    const u = userInfo(); // NSS (LDAP, containers with an arbitrary uid)
    return { name: u.username, uid, gid: process.getgid!(), home: u.homedir, shell: u.shell ?? '/bin/sh' };
  } catch {
    return { name: String(uid), uid, gid: process.getgid!(), home: '/', shell: '/bin/sh' };
  }
}
