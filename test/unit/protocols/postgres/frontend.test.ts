import { describe, expect, it } from 'vitest';
import {
  CANCEL_REQUEST_CODE, type FrontendMessage, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, decodeFrontend, encodeBind,
  encodeCancelRequest, encodeClose, encodeCopyData, encodeCopyDone, encodeCopyFail, encodeDescribe, encodeExecute,
  encodeFlush, encodeParse, encodePassword, encodeQuery, encodeSASLInitialResponse, encodeSASLResponse, encodeSSLRequest,
  encodeStartup, encodeSync, encodeTerminate, parseSASLInitialResponse, parseStartup,
} from '../../../../protocols/postgres/frontend.js';
import { body, bytewise, decodeClient, expectProtocolError, rawFrame, twoPieceSplits } from './helpers.js';

/** Untyped startup-phase packet: Int32 length, Int32 code, rest. */
function packet(code: number, rest: Buffer | number[] = [], length?: number): Buffer {
  const r = Buffer.from(rest);
  const head = Buffer.alloc(8);
  head.writeInt32BE(length ?? 8 + r.length, 0);
  head.writeInt32BE(code, 4);
  return Buffer.concat([head, r]);
}

/** Decode one encoded typed message, checking its length field on the way. */
function decodeOne(frame: Buffer): FrontendMessage {
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  return decodeFrontend(frame[0]!, frame.subarray(5));
}

describe('parseStartup', () => {
  it('parses a 3.0 StartupMessage and reports how much it consumed', () => {
    const pkt = encodeStartup({ user: 'alice@orders-db', database: 'orders', application_name: 'psql', options: '-c x=ü' });
    const trailing = encodeQuery('select 1');
    const got = parseStartup(Buffer.concat([pkt, trailing]));
    expect(got).toEqual({
      packet: { type: 'startup', major: 3, minor: 0, params: { user: 'alice@orders-db', database: 'orders', application_name: 'psql', options: '-c x=ü' } },
      consumed: pkt.length,
    });
  });

  it('returns null until the whole packet is there, at every prefix', () => {
    const pkt = encodeStartup({ user: 'postgres' }, 2);
    for (let n = 0; n < pkt.length; n++) expect(parseStartup(pkt.subarray(0, n))).toBeNull();
    expect(parseStartup(pkt)?.packet).toEqual({ type: 'startup', major: 3, minor: 2, params: { user: 'postgres' } });
  });

  it('keeps parameter names like __proto__ as plain data', () => {
    const got = parseStartup(encodeStartup({ ['__proto__']: 'x', user: 'u' }));
    expect(got?.packet.type === 'startup' && got.packet.params['__proto__']).toBe('x');
  });

  it('parses SSLRequest, GSSENCRequest and CancelRequest (3.0 and long 3.2 keys)', () => {
    expect(parseStartup(encodeSSLRequest())).toEqual({ packet: { type: 'ssl_request' }, consumed: 8 });
    expect(parseStartup(packet(GSSENC_REQUEST_CODE))?.packet).toEqual({ type: 'gssenc_request' });
    const key = Buffer.from([1, 2, 3, 4]);
    const buf = encodeCancelRequest(4242, key);
    const got = parseStartup(buf);
    expect(got).toEqual({ packet: { type: 'cancel', processId: 4242, secretKey: key }, consumed: 16 });
    buf.fill(0);
    expect(got?.packet.type === 'cancel' && got.packet.secretKey).toEqual(key); // a copy, not a view
    const long = Buffer.alloc(32, 0xab);
    expect(parseStartup(encodeCancelRequest(7, long))?.packet).toEqual({ type: 'cancel', processId: 7, secretKey: long });
  });

  it('returns other major versions without parsing their layout (the caller refuses them)', () => {
    const v2 = packet(2 << 16, Buffer.alloc(288));
    expect(parseStartup(v2)?.packet).toEqual({ type: 'startup', major: 2, minor: 0, params: {} });
  });

  describe('malformed', () => {
    const MAX = '(must be between 8 and 10000 bytes)';
    const cases: [string, Buffer, string][] = [
      ['length below 8', packet(196608, [], 7), `invalid startup packet length 7 ${MAX}`],
      ['negative length', packet(196608, [], -5), `invalid startup packet length -5 ${MAX}`],
      ['longer than 10000 bytes', packet(196608, Buffer.alloc(9993)), `invalid startup packet length 10001 ${MAX}`],
      ['HTTP instead of PostgreSQL', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
        `invalid startup packet length 1195725856 ${MAX}: received "GET / HTTP/1.1", which is not the PostgreSQL protocol`],
      ['a bare TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
        `invalid startup packet length 369295618 ${MAX}: this looks like a TLS handshake sent without an SSLRequest`],
      ['no final terminator', packet(196608, body('user', 'postgres')), 'invalid startup packet layout: missing the final terminator'],
      ['name without NUL', packet(196608, Buffer.from('user')), 'invalid startup packet layout: parameter name is not NUL-terminated'],
      ['odd key/value list', packet(196608, body('user', 'postgres', 'database')),
        'invalid startup packet layout: parameter "database" has no value'],
      ['value without NUL', packet(196608, Buffer.concat([body('user'), Buffer.from('postgres')])),
        'invalid startup packet layout: value of parameter "user" is not NUL-terminated'],
      ['bytes after the terminator', packet(196608, body('user', 'u', [0, 0x41, 0x42])),
        'invalid startup packet layout: 2 bytes after the final terminator'],
      ['unknown special code', packet((1234 << 16) | 5681), 'unsupported startup request code 1234/5681'],
      ['SSLRequest with a body', packet(SSL_REQUEST_CODE, [0, 0, 0, 0]), 'invalid SSLRequest length 12 (must be 8)'],
      ['GSSENCRequest with a body', packet(GSSENC_REQUEST_CODE, [0]), 'invalid GSSENCRequest length 9 (must be 8)'],
      ['CancelRequest without a key', packet(CANCEL_REQUEST_CODE, [0, 0, 0, 1]),
        'invalid CancelRequest length 12 (must be between 16 and 268 bytes)'],
      ['CancelRequest key over 256 bytes', packet(CANCEL_REQUEST_CODE, Buffer.alloc(4 + 257)),
        'invalid CancelRequest length 269 (must be between 16 and 268 bytes)'],
    ];
    for (const [name, bytes, message] of cases) {
      it(name, () => expectProtocolError(() => parseStartup(bytes), message));
    }

    it('rejects an oversized length before the bytes arrive', () => {
      expectProtocolError(() => parseStartup(Buffer.from([0, 1, 0, 0])), `invalid startup packet length 65536 ${MAX}`);
    });
    it('honours a custom cap', () => {
      expectProtocolError(() => parseStartup(encodeStartup({ user: 'x'.repeat(100) }), 64),
        'invalid startup packet length 115 (must be between 8 and 64 bytes)');
    });
  });
});

describe('a client stream with SSLRequest, startup and typed messages', () => {
  const stream = Buffer.concat([
    encodeSSLRequest(), encodeStartup({ user: 'alice@orders-db', database: 'orders' }),
    encodeParse('', 'select $1'), encodeBind('', '', [], ['x']), encodeExecute(), encodeSync(), encodeTerminate(),
  ]);
  const whole = decodeClient([stream]);

  it('decodes whole', () => {
    expect(whole.startup.map((p) => p.type)).toEqual(['ssl_request', 'startup']);
    expect(whole.frames.map((f) => f.msg.type)).toEqual(['parse', 'bind', 'execute', 'sync', 'terminate']);
  });
  it('decodes the same at every two-piece split and in 1-byte pieces', () => {
    for (const pieces of twoPieceSplits(stream)) expect(decodeClient(pieces)).toEqual(whole);
    expect(decodeClient(bytewise(stream))).toEqual(whole);
  });
});

describe('decodeFrontend round trips every encoder', () => {
  const cases: [string, Buffer, FrontendMessage][] = [
    ['Query', encodeQuery('select 1; select \'é\''), { type: 'query', sql: "select 1; select 'é'" }],
    ['Parse', encodeParse('s1', 'select $1, $2', [23, 0xffffffff]), { type: 'parse', statement: 's1', sql: 'select $1, $2', paramTypes: [23, 0xffffffff] }],
    ['Parse, no types', encodeParse('', 'select 1'), { type: 'parse', statement: '', sql: 'select 1', paramTypes: [] }],
    ['Bind', encodeBind('p1', 's1', [0, 1], ['42', null, Buffer.from([0, 0xff]), Buffer.alloc(0)], [1]), {
      type: 'bind', portal: 'p1', statement: 's1', paramFormats: [0, 1],
      params: [Buffer.from('42'), null, Buffer.from([0, 0xff]), Buffer.alloc(0)], resultFormats: [1],
    }],
    ['Execute', encodeExecute('p1', 100), { type: 'execute', portal: 'p1', maxRows: 100 }],
    ['Execute defaults', encodeExecute(), { type: 'execute', portal: '', maxRows: 0 }],
    ['Describe S', encodeDescribe('S', 's1'), { type: 'describe', kind: 'S', name: 's1' }],
    ['Describe P', encodeDescribe('P'), { type: 'describe', kind: 'P', name: '' }],
    ['Close', encodeClose('S', 's1'), { type: 'close', kind: 'S', name: 's1' }],
    ['Sync', encodeSync(), { type: 'sync' }],
    ['Flush', encodeFlush(), { type: 'flush' }],
    ['Terminate', encodeTerminate(), { type: 'terminate' }],
    ['CopyData', encodeCopyData(Buffer.from('1\tx\n')), { type: 'copy_data', bytes: 4 }],
    ['CopyDone', encodeCopyDone(), { type: 'copy_done' }],
    ['CopyFail', encodeCopyFail('aborted by user'), { type: 'copy_fail', message: 'aborted by user' }],
    ['PasswordMessage', encodePassword('s3cret'), { type: 'password', data: Buffer.from('s3cret\0') }],
    ['SASLResponse', encodeSASLResponse(Buffer.from('c=biws,r=abc')), { type: 'password', data: Buffer.from('c=biws,r=abc') }],
  ];
  for (const [name, frame, expected] of cases) it(name, () => expect(decodeOne(frame)).toEqual(expected));

  it('SASLInitialResponse through parseSASLInitialResponse', () => {
    const msg = decodeOne(encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=nonce')));
    expect(msg.type).toBe('password');
    if (msg.type !== 'password') return;
    expect(parseSASLInitialResponse(msg.data)).toEqual({ mechanism: 'SCRAM-SHA-256', response: Buffer.from('n,,n=,r=nonce') });
    expect(parseSASLInitialResponse(body('SCRAM-SHA-256', [0xff, 0xff, 0xff, 0xff]))).toEqual({ mechanism: 'SCRAM-SHA-256', response: Buffer.alloc(0) });
    expectProtocolError(() => parseSASLInitialResponse(body('SCRAM-SHA-256', [0, 0, 0, 9], 'x')),
      'malformed SASLInitialResponse message: response runs past the end of the message');
  });

  it('FunctionCall (no encoder: built by hand)', () => {
    const b = body([0, 0, 0x04, 0xd2], [0, 1, 0, 1], [0, 2], [0, 0, 0, 2, 0xaa, 0xbb], [0xff, 0xff, 0xff, 0xff], [0, 0]);
    expect(decodeFrontend(0x46, b)).toEqual({ type: 'function_call', oid: 1234, argFormats: [1], args: [Buffer.from([0xaa, 0xbb]), null], resultFormat: 0 });
  });

  it('unknown type bytes decode to unknown', () => {
    expect(decodeFrontend(0x7a, Buffer.from('zzz'))).toEqual({ type: 'unknown', code: 0x7a });
  });

  it('copies bind params and password data out of the frame', () => {
    const frame = Buffer.concat([encodeBind('', '', [], ['abc']), encodePassword('pw')]);
    const bind = decodeFrontend(frame[0]!, frame.subarray(5, frame.readInt32BE(1) + 1));
    const pw = decodeOne(frame.subarray(frame.readInt32BE(1) + 1));
    frame.fill(0);
    expect(bind.type === 'bind' && bind.params[0]!.toString()).toBe('abc');
    expect(pw.type === 'password' && pw.data.toString()).toBe('pw\0');
  });
});

describe('decodeFrontend malformed bodies', () => {
  const bind = (...parts: (string | number[] | Buffer)[]): Buffer => rawFrame('B', body(...parts)).subarray(5);
  const cases: [string, number, Buffer, string][] = [
    ['Query without NUL', 0x51, Buffer.from('select 1'), 'malformed Query message: query string is not NUL-terminated'],
    ['Query with trailing bytes', 0x51, body('select 1', [1, 2]), 'malformed Query message: 2 unexpected byte(s) after the last field'],
    ['Parse with a type count past the end', 0x50, body('s', 'select $1', [0, 2], [0, 0, 0, 23]),
      'malformed Parse message: parameter type count 2 exceeds the message length'],
    ['Parse truncated before the count', 0x50, body('s', 'select 1', [0]), 'malformed Parse message: parameter type count runs past the end of the message'],
    ['Bind with a param count past the end', 0x42, bind('', '', [0, 0], [0, 3], [0, 0, 0, 1, 0x31]),
      'malformed Bind message: parameter count 3 exceeds the message length'],
    ['Bind with a param value past the end', 0x42, bind('', '', [0, 0], [0, 1], [0, 0, 0, 9], 'abc'),
      'malformed Bind message: parameter 1 value runs past the end of the message'],
    ['Bind with a negative param length', 0x42, bind('', '', [0, 0], [0, 2], [0xff, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0xfe], [0, 0]),
      'malformed Bind message: parameter 2 has invalid length -2'],
    ['Bind with a format count past the end', 0x42, bind('', '', [0, 5], [0, 1]),
      'malformed Bind message: parameter format count 5 exceeds the message length'],
    ['Bind truncated at the result formats', 0x42, bind('', '', [0, 0], [0, 0]),
      'malformed Bind message: result format count runs past the end of the message'],
    ['Bind with no statement name', 0x42, body('portal'), 'malformed Bind message: statement name is not NUL-terminated'],
    ['Execute truncated', 0x45, body('', [0, 0]), 'malformed Execute message: row limit runs past the end of the message'],
    ['Describe with a bad kind', 0x44, body([0x58], 's1'), "malformed Describe message: kind must be 'S' or 'P', got 'X'"],
    ['Close with no body', 0x43, Buffer.alloc(0), 'malformed Close message: kind runs past the end of the message'],
    ['Sync with a body', 0x53, Buffer.from([0]), 'malformed Sync message: 1 unexpected byte(s) after the last field'],
    ['CopyFail without NUL', 0x66, Buffer.from('oops'), 'malformed CopyFail message: error message is not NUL-terminated'],
    ['FunctionCall with an arg past the end', 0x46, body([0, 0, 0, 1], [0, 0], [0, 1], [0, 0, 0, 8], [1]),
      'malformed FunctionCall message: argument 1 value runs past the end of the message'],
  ];
  for (const [name, type, bytes, message] of cases) it(name, () => expectProtocolError(() => decodeFrontend(type, bytes), message));
});
