/** `alice@orders-db` → {alice, orders-db}: split at the LAST '@' (or '#', for URLs and ssh's own user@host parsing). */
export function splitLogin(login: string): { user: string; target: string } | null {
  const i = Math.max(login.lastIndexOf('@'), login.lastIndexOf('#'));
  if (i <= 0 || i === login.length - 1) return null;
  return { user: login.slice(0, i), target: login.slice(i + 1) };
}
