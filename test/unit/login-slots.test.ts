import { describe, expect, it } from 'vitest';
import { LoginSlots } from '../../src/util/login-slots.js';

describe('LoginSlots', () => {
  it('caps logins in total and per source host, and frees slots once', () => {
    const s = new LoginSlots(4, 2);
    const a1 = s.take('10.0.0.1');
    const a2 = s.take('10.0.0.1');
    expect(a1.ok && a2.ok).toBe(true);
    const a3 = s.take('10.0.0.1');
    expect(a3.ok).toBe(false);
    if (!a3.ok) expect(a3.why).toMatch(/2 connections from 10\.0\.0\.1/);
    const b1 = s.take('10.0.0.2');
    const b2 = s.take('10.0.0.2');
    expect(b1.ok && b2.ok).toBe(true);
    const c = s.take('10.0.0.3');
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.why).toMatch(/4 connections are already/);
    if (a1.ok) {
      a1.release();
      a1.release(); // idempotent
    }
    expect(s.inUse).toBe(3);
    expect(s.take('10.0.0.3').ok).toBe(true);
    expect(s.take('10.0.0.1').ok).toBe(false); // total is full again
  });
});
