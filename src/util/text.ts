/** Attacker-controlled bytes as text: UTF-8 with U+FFFD for invalid input, capped at `max` UTF-16 units without splitting a surrogate pair. */
export function decodeCapped(b: Buffer, max: number): string {
  let s = b.subarray(0, max * 4).toString('utf8');
  if (s.length > max) {
    const cut = s.charCodeAt(max - 1) >= 0xd800 && s.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
    s = s.slice(0, cut);
  }
  return s;
}
