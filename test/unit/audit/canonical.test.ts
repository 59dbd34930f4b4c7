import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, canonicalJSON, chainHash, hashMatches } from '../../../src/audit/canonical.js';
import { chainedEvent, prepareAudit } from '../../../src/audit/prepared.js';

describe('canonicalJSON', () => {
  it('sorts keys recursively, keeps array order, has no whitespace', () => {
    expect(canonicalJSON({ b: 1, a: { d: [3, 1, { z: null, y: 'x' }], c: true } })).toBe(
      '{"a":{"c":true,"d":[3,1,{"y":"x","z":null}]},"b":1}',
    );
    expect(canonicalJSON({ '10': 1, '9': 2, B: 3, a: 4 })).toBe('{"10":1,"9":2,"B":3,"a":4}');
  });

  it('drops undefined members and turns undefined array slots into null', () => {
    expect(canonicalJSON({ a: undefined, b: [undefined, 1] })).toBe('{"b":[null,1]}');
  });

  it('encodes strings and numbers exactly as JSON.stringify', () => {
    const v = { s: 'quote " backslash \\ nl \n tab \t ü 😀 \u0001 \ud800', n: [0, -0, 1.5, 1e21, -1e-7, 2 ** 53] };
    expect(canonicalJSON(v)).toBe(JSON.stringify({ n: v.n, s: v.s }));
  });

  it('uses toJSON (dates) like JSON.stringify', () => {
    expect(canonicalJSON({ at: new Date(0) })).toBe('{"at":"1970-01-01T00:00:00.000Z"}');
  });

  it('rejects what has no exact JSON form', () => {
    expect(() => canonicalJSON({ n: Number.NaN })).toThrow(/non-finite/);
    expect(() => canonicalJSON({ n: [Number.POSITIVE_INFINITY] })).toThrow(/non-finite/);
    expect(() => canonicalJSON({ n: 1n })).toThrow(/bigint/);
    expect(() => canonicalJSON({ f: () => 1 })).toThrow(/function/);
    expect(() => canonicalJSON({ s: Symbol('x') })).toThrow(/symbol/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJSON(cyclic)).toThrow(/deeper/);
    expect(() => canonicalJSON(undefined)).toThrow();
  });

  it('is stable through a JSON round trip (what the verifier relies on)', () => {
    const v = { z: { y: [1, 'a', { x: null }] }, a: 'é', n: 0.1 + 0.2 };
    const once = canonicalJSON(v);
    expect(canonicalJSON(JSON.parse(once))).toBe(once);
  });
});

describe('chainHash', () => {
  it('is sha256 hex of prevHash + canonicalJSON(event fields)', () => {
    const ev = { seq: 1, ts: 1000, kind: 'auth.ok', actor: 'alice', sessionId: null, target: null, data: { b: 2, a: 1 } };
    const body = '{"actor":"alice","data":{"a":1,"b":2},"kind":"auth.ok","seq":1,"sessionId":null,"target":null,"ts":1000}';
    expect(chainHash(GENESIS_HASH, ev)).toBe(createHash('sha256').update(GENESIS_HASH + body).digest('hex'));
    expect(GENESIS_HASH).toBe('0'.repeat(64));
  });

  it('hashMatches recomputes at a given seq, and works on lazy events', () => {
    const p = prepareAudit({ ts: 5, kind: 'k', actor: 'a', sessionId: 's', data: { x: 1 } }, false);
    const hash = chainHash(GENESIS_HASH, { seq: 3, ts: 5, kind: 'k', actor: 'a', sessionId: 's', target: null, data: { x: 1 } });
    const ev = chainedEvent(p, 3, GENESIS_HASH, hash);
    expect(ev.data).toEqual({ x: 1 });
    expect(hashMatches(ev)).toBe(true);
    expect(hashMatches(ev, 4)).toBe(false);
    expect(JSON.parse(JSON.stringify(ev))).toMatchObject({ seq: 3, data: { x: 1 }, hash });
  });
});

describe('prepareAudit', () => {
  it('snapshots data at hand-over', () => {
    const data = { n: 1 };
    const p = prepareAudit({ ts: 1, kind: 'k', actor: 'a', data });
    data.n = 2;
    expect(p.dataJson).toBe('{"n":1}');
    expect(p).toMatchObject({ sessionId: null, target: null });
  });

  it('validates the envelope', () => {
    expect(() => prepareAudit({ ts: Number.NaN, kind: 'k', actor: 'a', data: {} })).toThrow(/ts/);
    expect(() => prepareAudit({ ts: 1, kind: '', actor: 'a', data: {} })).toThrow(/kind/);
    expect(() => prepareAudit({ ts: 1, kind: 'k', actor: 'a', data: [] as unknown as Record<string, unknown> })).toThrow(/data/);
  });
});
