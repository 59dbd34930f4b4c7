/**
 * HTTP helpers for the API integration tests: one request over real HTTP to
 * an in-process broker's web listener (bearer token, cookie or nothing), and
 * a SessionHandle test double for sessions opened straight on the broker
 * (as test/integration/cli.test.ts does).
 */
import http from 'node:http';
import type { SessionHandle } from '../../src/session.js';
import type { Broker } from './wicket-pg.js';

/**
 * The callers of the API tests: alice and bob (developers, peers), audrey
 * (audit: true), pete (approves payments), adam (admin: true and nothing
 * else). Targets in three segments; lab is reached by nobody's rules.
 */
export const API_PASSWORDS = {
  alice: 'alice-correct-horse-1',
  bob: 'bob-battery-staple-2',
  audrey: 'audrey-reads-logs-3',
  pete: 'pete-approves-4',
  adam: 'adam-admin-pass-5',
} as const;

export type ApiUser = keyof typeof API_PASSWORDS;

export const API_YAML = [
  'data_dir: ./data',
  'listen: { web: 127.0.0.1:0, postgres: 127.0.0.1:0 }',
  'segments: [{ name: payments, description: Card data }, { name: sandbox }, { name: lab }]',
  'targets:',
  '  - { name: orders-db, segment: payments, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres, tls: disable }',
  '  - { name: reports-db, segment: sandbox, protocol: postgres, address: 127.0.0.1:5432, user: postgres, database: postgres, tls: disable }',
  '  - { name: sandbox, segment: sandbox, protocol: shell, command: [/bin/sh] }',
  '  - { name: lab-db, segment: lab, protocol: mysql, address: 127.0.0.1:3306, user: root, tls: disable }',
  'roles:',
  '  - name: developer',
  '    allow:',
  '      - { segments: [sandbox] }',
  '      - { segments: [payments], protocols: [postgres], access: read, approval: required, max_duration: 4h }',
  '  - { name: auditor, audit: true }',
  '  - { name: approver, approve: [payments] }',
  '  - { name: admin, admin: true }',
  'users:',
  '  - { name: alice, roles: [developer] }',
  '  - { name: bob, roles: [developer] }',
  '  - { name: audrey, roles: [auditor] }',
  '  - { name: pete, roles: [approver] }',
  '  - { name: adam, roles: [admin] }',
  '',
].join('\n');

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly raw: Buffer;
  readonly text: string;
  /** Parsed JSON body when the response is JSON, else {}. */
  readonly body: Record<string, unknown>;
}

export interface CallOptions {
  readonly token?: string;
  readonly cookie?: string;
  readonly json?: unknown;
  readonly raw?: string;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

export type Call = (method: string, path: string, o?: CallOptions) => Promise<Reply>;

/** A caller for `b`'s web listener. */
export function apiCaller(b: Broker): Call {
  const addr = b.running.addresses.web!;
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i);
  const port = Number(addr.slice(i + 1));
  return (method, path, o = {}) => {
    const payload = o.raw ?? (o.json === undefined ? undefined : JSON.stringify(o.json));
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    if (o.cookie !== undefined) headers.cookie = o.cookie;
    if (payload !== undefined) {
      headers['content-type'] = o.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host, port, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let body: Record<string, unknown> = {};
          if (/^application\/json/.test(res.headers['content-type'] ?? '')) {
            try {
              body = JSON.parse(text) as Record<string, unknown>;
            } catch {
              reject(new Error(`${method} ${path}: invalid JSON (${res.statusCode}): ${text.slice(0, 200)}`));
              return;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, raw, text, body });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  };
}

/** The error code of a JSON error reply. */
export function errorCode(r: Reply): string | undefined {
  const e = r.body.error as { code?: string } | undefined;
  return e?.code;
}

/** The adapter side of a session, as a test double: records terminate() calls. */
export function testHandle(): SessionHandle & { reasons: string[]; terminated: Promise<string> } {
  let done!: (r: string) => void;
  const terminated = new Promise<string>((r) => (done = r));
  const reasons: string[] = [];
  return {
    reasons,
    terminated,
    terminate(reason) {
      reasons.push(reason);
      done(reason);
    },
  };
}
