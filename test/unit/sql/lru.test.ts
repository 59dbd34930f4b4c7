import { describe, expect, it } from 'vitest';
import { Lru } from '../../../src/sql/lru.js';

describe('Lru', () => {
  it('never holds more than its capacity', () => {
    const c = new Lru<number, number>(10);
    for (let i = 0; i < 1000; i++) {
      c.set(i, i);
      expect(c.size).toBeLessThanOrEqual(10);
    }
    expect(c.get(999)).toBe(999);
    expect(c.get(0)).toBeUndefined();
  });

  it('keeps an entry that is read while others are inserted', () => {
    const c = new Lru<string, number>(10);
    c.set('hot', 1);
    for (let i = 0; i < 100; i++) {
      c.set(`k${i}`, i);
      expect(c.get('hot')).toBe(1);
    }
  });

  it('keeps an entry for at least capacity/2 other insertions', () => {
    const c = new Lru<number, string>(100);
    c.set(-1, 'x');
    for (let i = 0; i < 50; i++) c.set(i, 'y');
    expect(c.get(-1)).toBe('x');
  });

  it('overwrites and clears', () => {
    const c = new Lru<string, number>(4);
    c.set('a', 1);
    c.set('a', 2);
    expect(c.get('a')).toBe(2);
    expect(c.size).toBe(1);
    c.clear();
    expect(c.size).toBe(0);
    expect(c.get('a')).toBeUndefined();
  });

  it('rejects a capacity below 2', () => {
    expect(() => new Lru(1)).toThrow(RangeError);
  });
});
