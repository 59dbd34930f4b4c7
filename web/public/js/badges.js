// Small shared badges.
import { h } from './dom.js';

/** LIVE, or the end status (ended / terminated / failed) with the reason as a tooltip. */
export function statusBadge(s) {
  if (s.live) return h('span', { class: 'badge live' }, 'LIVE');
  const cls = s.status === 'ended' ? 'ok' : s.status === 'terminated' || s.status === 'failed' ? 'bad' : '';
  return h('span', { class: `badge ${cls}`, title: s.endReason ?? '' }, String(s.status ?? ''));
}

/** Request states. */
export function stateBadge(state) {
  const cls = { pending: 'warn', approved: 'ok', denied: 'bad', revoked: 'bad', expired: '', cancelled: '' }[state] ?? '';
  return h('span', { class: `badge ${cls}` }, String(state ?? ''));
}
