import { describe, expect, it } from 'vitest';
import {
  type BackendMessage, authCleartextPassword, authMD5Password, authOk, authSASL, authSASLContinue, authSASLFinal,
  backendKeyData, commandComplete, commandTagRows, dataRow, decodeBackend, emptyQueryResponse, errorResponse,
  negotiateProtocolVersion, noticeResponse, parameterStatus, readyForQuery, rowDescription, saslMechanisms,
} from '../../../../protocols/postgres/backend.js';
import { body, expectProtocolError } from './helpers.js';

function decodeOne(frame: Buffer): BackendMessage {
  expect(frame.readInt32BE(1)).toBe(frame.length - 1);
  return decodeBackend(frame[0]!, frame.subarray(5));
}

describe('backend encoders round-trip through decodeBackend', () => {
  const salt = Buffer.from([1, 2, 3, 4]);
  const cases: [string, Buffer, BackendMessage][] = [
    ['AuthenticationOk', authOk(), { type: 'authentication', code: 0, data: Buffer.alloc(0) }],
    ['AuthenticationCleartextPassword', authCleartextPassword(), { type: 'authentication', code: 3, data: Buffer.alloc(0) }],
    ['AuthenticationMD5Password', authMD5Password(salt), { type: 'authentication', code: 5, data: salt }],
    ['AuthenticationSASLContinue', authSASLContinue(Buffer.from('r=abc,s=xyz,i=4096')),
      { type: 'authentication', code: 11, data: Buffer.from('r=abc,s=xyz,i=4096') }],
    ['AuthenticationSASLFinal', authSASLFinal(Buffer.from('v=sig')), { type: 'authentication', code: 12, data: Buffer.from('v=sig') }],
    ['ParameterStatus', parameterStatus('server_version', '16.0 (wicket)'), { type: 'parameter_status', name: 'server_version', value: '16.0 (wicket)' }],
    ['BackendKeyData', backendKeyData(31337, Buffer.from([9, 8, 7, 6])), { type: 'backend_key_data', processId: 31337, secretKey: Buffer.from([9, 8, 7, 6]) }],
    ['BackendKeyData, 32-byte key', backendKeyData(1, Buffer.alloc(32, 5)), { type: 'backend_key_data', processId: 1, secretKey: Buffer.alloc(32, 5) }],
    ['ReadyForQuery I', readyForQuery('I'), { type: 'ready_for_query', status: 'I' }],
    ['ReadyForQuery T', readyForQuery('T'), { type: 'ready_for_query', status: 'T' }],
    ['ReadyForQuery E', readyForQuery('E'), { type: 'ready_for_query', status: 'E' }],
    ['CommandComplete', commandComplete('INSERT 0 3'), { type: 'command_complete', tag: 'INSERT 0 3' }],
    ['EmptyQueryResponse', emptyQueryResponse(), { type: 'empty_query_response' }],
    ['NegotiateProtocolVersion', negotiateProtocolVersion(0, ['_pq_.foo', '_pq_.bar']),
      { type: 'negotiate_protocol_version', minor: 0, unsupported: ['_pq_.foo', '_pq_.bar'] }],
    ['DataRow', dataRow(['1', null, Buffer.from([0xde, 0xad]), '']), { type: 'data_row', columns: 4 }],
    ['RowDescription', rowDescription([
      { name: 'id', typeOid: 23, typeSize: 4 },
      { name: 'naïve', tableOid: 16403, column: 3, typeOid: 25, typeSize: -1, typeMod: -1, format: 1 },
    ]), { type: 'row_description', fields: [
      { name: 'id', tableOid: 0, column: 0, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 },
      { name: 'naïve', tableOid: 16403, column: 3, typeOid: 25, typeSize: -1, typeMod: -1, format: 1 },
    ] }],
  ];
  for (const [name, frame, expected] of cases) it(name, () => expect(decodeOne(frame)).toEqual(expected));

  it('AuthenticationSASL lists mechanisms (saslMechanisms)', () => {
    const msg = decodeOne(authSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']));
    expect(msg.type === 'authentication' && msg.code).toBe(10);
    if (msg.type === 'authentication') expect(saslMechanisms(msg.data)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    expectProtocolError(() => saslMechanisms(body('SCRAM-SHA-256')), 'malformed AuthenticationSASL message: mechanism name is not NUL-terminated');
  });

  it('DataRow values are laid out as Int32 length + bytes, -1 for NULL', () => {
    const f = dataRow(['ab', null]);
    expect([...f.subarray(5)]).toEqual([0, 2, 0, 0, 0, 2, 0x61, 0x62, 0xff, 0xff, 0xff, 0xff]);
  });

  it('ErrorResponse carries S and V severities, code, message, detail, hint, position', () => {
    const msg = decodeOne(errorResponse({ severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "alice"', detail: 'd', hint: 'h', position: 12 }));
    expect(msg).toEqual({ type: 'error_response', fields: {
      severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "alice"', detail: 'd', hint: 'h', position: '12',
      raw: { S: 'FATAL', V: 'FATAL', C: '28P01', M: 'password authentication failed for user "alice"', D: 'd', H: 'h', P: '12' },
    } });
  });

  it('NoticeResponse', () => {
    const msg = decodeOne(noticeResponse({ severity: 'WARNING', code: '01000', message: 'session will be recorded' }));
    expect(msg).toEqual({ type: 'notice_response', fields: {
      severity: 'WARNING', code: '01000', message: 'session will be recorded', raw: { S: 'WARNING', V: 'WARNING', C: '01000', M: 'session will be recorded' },
    } });
  });

  it('drops NUL bytes from error and notice strings (they are C strings)', () => {
    const msg = decodeOne(errorResponse({ severity: 'ERROR', code: '42\u00001501', message: 'bad\u0000 input', detail: '\u0000x', hint: 'y\u0000' }));
    expect(msg.type === 'error_response' && msg.fields).toMatchObject({ code: '421501', message: 'bad input', detail: 'x', hint: 'y' });
    const n = decodeOne(noticeResponse({ severity: 'NOTICE', code: '00000', message: 'a\u0000b' }));
    expect(n.type === 'notice_response' && n.fields.message).toBe('ab');
  });
});

describe('decodeBackend, messages wicket only reads', () => {
  const cases: [string, number, Buffer, BackendMessage][] = [
    ['ParseComplete', 0x31, Buffer.alloc(0), { type: 'parse_complete' }],
    ['BindComplete', 0x32, Buffer.alloc(0), { type: 'bind_complete' }],
    ['CloseComplete', 0x33, Buffer.alloc(0), { type: 'close_complete' }],
    ['NoData', 0x6e, Buffer.alloc(0), { type: 'no_data' }],
    ['PortalSuspended', 0x73, Buffer.alloc(0), { type: 'portal_suspended' }],
    ['CopyDone', 0x63, Buffer.alloc(0), { type: 'copy_done' }],
    ['CopyData', 0x64, Buffer.from('1\tx\n'), { type: 'copy_data', bytes: 4 }],
    ['ParameterDescription', 0x74, body([0, 2], [0, 0, 0, 23], [0, 0, 0, 25]), { type: 'parameter_description', types: [23, 25] }],
    ['CopyInResponse', 0x47, body([0], [0, 2], [0, 0], [0, 0]), { type: 'copy_in_response', format: 0, columnFormats: [0, 0] }],
    ['CopyOutResponse', 0x48, body([1], [0, 1], [0, 1]), { type: 'copy_out_response', format: 1, columnFormats: [1] }],
    ['CopyBothResponse', 0x57, body([0], [0, 0]), { type: 'copy_both_response', format: 0, columnFormats: [] }],
    ['NotificationResponse', 0x41, body([0, 0, 0, 42], 'orders', '{"id":1}'), { type: 'notification_response', processId: 42, channel: 'orders', payload: '{"id":1}' }],
    ['FunctionCallResponse', 0x56, body([0, 0, 0, 2], [7, 8]), { type: 'function_call_response', value: Buffer.from([7, 8]) }],
    ['FunctionCallResponse NULL', 0x56, body([0xff, 0xff, 0xff, 0xff]), { type: 'function_call_response', value: null }],
    ['unknown', 0x7a, Buffer.from('?'), { type: 'unknown', code: 0x7a }],
  ];
  for (const [name, type, b, expected] of cases) it(name, () => expect(decodeBackend(type, b)).toEqual(expected));

  it('ErrorResponse fields map to names and keep everything in raw', () => {
    const b = body([0x53], 'ERREUR', [0x56], 'ERROR', [0x43], '23505', [0x4d], 'duplicate key', [0x73], 'public', [0x74], 'orders',
      [0x6e], 'orders_pkey', [0x46], 'nbtinsert.c', [0x4c], '664', [0x52], '_bt_check_unique', [0x57], 'SQL function', [0x71], 'q', [0x70], '3', [0x63], 'id', [0x64], 'int4', [0]);
    const msg = decodeBackend(0x45, b);
    expect(msg.type === 'error_response' && msg.fields).toEqual({
      severity: 'ERROR', code: '23505', message: 'duplicate key', schema: 'public', table: 'orders', constraint: 'orders_pkey',
      file: 'nbtinsert.c', line: '664', routine: '_bt_check_unique', where: 'SQL function', internalQuery: 'q', internalPosition: '3',
      column: 'id', dataType: 'int4',
      raw: { S: 'ERREUR', V: 'ERROR', C: '23505', M: 'duplicate key', s: 'public', t: 'orders', n: 'orders_pkey', F: 'nbtinsert.c',
        L: '664', R: '_bt_check_unique', W: 'SQL function', q: 'q', p: '3', c: 'id', d: 'int4' },
    });
  });

  it('copies Buffer fields out of the body', () => {
    const b = body([0, 0, 0, 5], [1, 2, 3, 4]);
    const msg = decodeBackend(0x52, b);
    b.fill(0);
    expect(msg).toEqual({ type: 'authentication', code: 5, data: Buffer.from([1, 2, 3, 4]) });
  });
});

describe('decodeBackend malformed bodies', () => {
  const cases: [string, number, Buffer, string][] = [
    ['DataRow without a column count', 0x44, Buffer.from([0]), 'malformed DataRow message: column count runs past the end of the message'],
    ['RowDescription with a field count past the end', 0x54, body([0, 3], 'a', Buffer.alloc(18)), 'malformed RowDescription message: field count 3 exceeds the message length'],
    ['RowDescription truncated inside a field', 0x54, body([0, 1], 'abcdefghijklmnop', Buffer.alloc(10)), 'malformed RowDescription message: field 1 type size runs past the end of the message'],
    ['ReadyForQuery with a bad status', 0x5a, Buffer.from('X'), 'malformed ReadyForQuery message: unknown transaction status 88'],
    ['ReadyForQuery with extra bytes', 0x5a, Buffer.from('II'), 'malformed ReadyForQuery message: 1 unexpected byte(s) after the last field'],
    ['BackendKeyData with a 2-byte key', 0x4b, body([0, 0, 0, 1], [1, 2]), 'malformed BackendKeyData message: secret key of 2 bytes (must be 4 to 256)'],
    ['ErrorResponse without the final zero', 0x45, body([0x53], 'ERROR'), 'malformed ErrorResponse message: field code runs past the end of the message'],
    ['NoticeResponse with an unterminated field', 0x4e, Buffer.from('SNOTICE'), 'malformed NoticeResponse message: field value is not NUL-terminated'],
    ['ParseComplete with a body', 0x31, Buffer.from([0]), 'malformed ParseComplete message: 1 unexpected byte(s) after the last field'],
    ['FunctionCallResponse with length -2', 0x56, body([0xff, 0xff, 0xff, 0xfe]), 'malformed FunctionCallResponse message: invalid result length -2'],
    ['NegotiateProtocolVersion with a huge count', 0x76, body([0, 0, 0, 0], [0x7f, 0, 0, 0]), 'malformed NegotiateProtocolVersion message: option count 2130706432 exceeds the message length'],
    ['CopyOutResponse with formats past the end', 0x48, body([0], [0, 4], [0, 0]), 'malformed CopyOutResponse message: column format count 4 exceeds the message length'],
    ['Authentication without a code', 0x52, Buffer.from([0, 0]), 'malformed Authentication message: request code runs past the end of the message'],
  ];
  for (const [name, type, b, message] of cases) it(name, () => expectProtocolError(() => decodeBackend(type, b), message));
});

describe('commandTagRows', () => {
  const cases: [string, number | null][] = [
    ['SELECT 5', 5], ['INSERT 0 3', 3], ['UPDATE 2', 2], ['DELETE 0', 0], ['MERGE 7', 7], ['FETCH 100', 100], ['MOVE 1', 1],
    ['COPY 20', 20], ['SELECT 12345678901', 12345678901], ['CREATE TABLE', null], ['BEGIN', null], ['', null], ['5', null], ['SELECT x5', null],
  ];
  for (const [tag, rows] of cases) it(JSON.stringify(tag), () => expect(commandTagRows(tag)).toBe(rows));
});
