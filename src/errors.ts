/**
 * One error class with stable codes. Protocol adapters map these codes to
 * their own wire errors (Postgres SQLSTATE, MySQL error numbers, SSH
 * disconnect reasons); the CLI prints `code: message` and exits non-zero.
 */
export const ERROR_CODES = {
  WICKET_ERR_CONFIG: 'configuration file is invalid',
  WICKET_ERR_CONFIG_SECRET: 'a secret reference could not be resolved',
  WICKET_ERR_USAGE: 'command line usage error',
  WICKET_ERR_AUTH: 'authentication failed',
  WICKET_ERR_AUTH_THROTTLED: 'too many failed attempts',
  WICKET_ERR_UNKNOWN_USER: 'unknown user',
  WICKET_ERR_UNKNOWN_TARGET: 'unknown target',
  WICKET_ERR_UNKNOWN_SEGMENT: 'unknown segment',
  WICKET_ERR_POLICY_DENY: 'denied by policy',
  WICKET_ERR_SEGMENT_LOCKED: 'segment is locked',
  WICKET_ERR_APPROVAL_REQUIRED: 'approval required',
  WICKET_ERR_RECORDING: 'recording unavailable',
  WICKET_ERR_STORE: 'store error',
  WICKET_ERR_AUDIT_TAMPERED: 'audit log verification failed',
  WICKET_ERR_NOT_FOUND: 'not found',
  WICKET_ERR_CONFLICT: 'conflicting state',
  WICKET_ERR_FORBIDDEN: 'not permitted',
  WICKET_ERR_LIMIT: 'a resource limit was reached',
  WICKET_ERR_PROTOCOL: 'protocol violation',
  WICKET_ERR_UPSTREAM: 'upstream connection failed',
  WICKET_ERR_HOST_KEY: 'upstream host key does not match',
  WICKET_ERR_TERMINATED: 'terminated by wicket',
  WICKET_ERR_INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class WicketError extends Error {
  override readonly name = 'WicketError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERROR_CODES[code]);
    this.code = code;
    this.details = details;
  }
}

export function isWicketError(e: unknown, code?: ErrorCode): e is WicketError {
  return e instanceof WicketError && (code === undefined || e.code === code);
}

/** A message safe to show a person, whatever was thrown. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
