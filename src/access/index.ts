/** Just-in-time access: requests, approvals and the grants they issue. */
export {
  AccessService, DEFAULT_PENDING_TTL_MS, DEFAULT_POLL_MS, MAX_TEXT, REQUEST_STATES, SYSTEM_ACTOR,
  approversOfRequest, grantExpiresAt, requestSubject,
} from './service.js';
export type { AccessDeps } from './service.js';
export { approversOf, checkDuration, isAdmin, isApprover, resolveRequest } from './rules.js';
export type { RequestSubject } from './rules.js';
