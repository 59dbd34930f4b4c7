/**
 * The viewer's pure browser-side logic (web/public/js), run in node: the
 * "writes only" SQL classifier and the mapping of recording time onto the
 * player's idle-limited timeline (the same arithmetic as asciinema-player's
 * own limiter, so a command click lands on its moment).
 */
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain browser ES modules, no type declarations
import { isWrite } from '../../../web/public/js/sql.js';
// @ts-expect-error: plain browser ES modules, no type declarations
import { IdleMap, parseCast } from '../../../web/public/js/player.js';

type Map = { toPlayer(t: number): number; toRecording(c: number): number };

describe('viewer: writes only', () => {
  it.each([
    ['INSERT INTO t VALUES (1)', true],
    ['  update t set a = 1', true],
    ['/* ticket 9 */ DELETE FROM t', true],
    ['-- note\nTRUNCATE t', true],
    ['REPLACE INTO t VALUES (1)', true],
    ['create table x (a int)', true],
    ['ALTER TABLE t ADD b int', true],
    ['DROP TABLE t', true],
    ['MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE', true],
    ['COPY t FROM STDIN', true],
    ['COPY t (a, b) FROM STDIN WITH (FORMAT csv)', true],
    ['WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone', true],
    ['COPY (SELECT * FROM t) TO STDOUT', false],
    ['COPY t TO STDOUT', false],
    ['SELECT * FROM t', false],
    ["SELECT 'DELETE FROM t'", false],
    ['WITH x AS (SELECT 1) SELECT * FROM x', false],
    ['BEGIN', false],
    ['', false],
  ])('%j -> %s', (sql, want) => {
    expect(isWrite(sql)).toBe(want);
  });
});

describe('viewer: idle-limited timeline', () => {
  const cast = '{"version":2,"width":80,"height":24}\n[0.5,"o","a"]\n[1.0,"o","b"]\n[11.0,"o","c"]\n[12.0,"i","d"]\n[40.0,"o","e"]\n';

  it('parses the event times of a cast', () => {
    const { header, times } = parseCast(cast) as { header: { width: number }; times: number[] };
    expect(header.width).toBe(80);
    expect(times).toEqual([0.5, 1, 11, 12, 40]);
  });

  it('maps recording time to player time and back, as the player shortens pauses', () => {
    const { times } = parseCast(cast) as { times: number[] };
    const off = new IdleMap(times, null) as Map;
    expect(off.toPlayer(25)).toBe(25);
    const m = new IdleMap(times, 2) as Map;
    // The player's limiter: every gap above 2 s counts as 2 s. 0.5, 1, 3, 4, 6.
    expect(m.toPlayer(0.5)).toBe(0.5);
    expect(m.toPlayer(11)).toBe(3);
    expect(m.toPlayer(12)).toBe(4);
    expect(m.toPlayer(40)).toBe(6);
    expect(m.toPlayer(11.5)).toBe(3.5);
    expect(m.toPlayer(30)).toBe(6); // inside a long pause: at most the limit past the last event
    for (const t of [0, 0.5, 1, 11, 11.5, 12, 40]) expect(m.toRecording(m.toPlayer(t))).toBeCloseTo(t, 9);
  });
});
