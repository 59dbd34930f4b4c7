/**
 * JSON errors for the HTTP API: `{ error: { code, message } }` with wicket's
 * stable codes (src/errors.ts), and the HTTP status each code maps to.
 * Anything that is not a WicketError is an internal error: its message is
 * logged, never sent (it may carry paths or SQL).
 */
import type { ErrorRequestHandler, Response } from 'express';
import { WicketError, errorMessage, type ErrorCode } from '../../src/errors.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  WICKET_ERR_USAGE: 400,
  WICKET_ERR_AUTH: 401,
  WICKET_ERR_FORBIDDEN: 403,
  WICKET_ERR_POLICY_DENY: 403,
  WICKET_ERR_APPROVAL_REQUIRED: 403,
  WICKET_ERR_NOT_FOUND: 404,
  WICKET_ERR_UNKNOWN_TARGET: 404,
  WICKET_ERR_UNKNOWN_SEGMENT: 404,
  WICKET_ERR_UNKNOWN_USER: 404,
  WICKET_ERR_CONFLICT: 409,
  WICKET_ERR_SEGMENT_LOCKED: 409,
  WICKET_ERR_LIMIT: 413,
  WICKET_ERR_AUTH_THROTTLED: 429,
  WICKET_ERR_RECORDING: 503,
  WICKET_ERR_STORE: 503,
};

export function httpStatus(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string): void {
  res.status(status).json({ error: { code, message } });
}

export function sendWicketError(res: Response, err: WicketError): void {
  sendError(res, httpStatus(err.code), err.code, err.message);
}

/** What body-parser puts on its errors (too large, malformed JSON, bad charset). */
interface HttpishError {
  readonly status?: unknown;
  readonly type?: unknown;
}

/** The last handler: every error becomes a JSON body. */
export function errorHandler(log: (line: string) => void): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err instanceof WicketError) return sendWicketError(res, err);
    const h = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
    if (h.type === 'entity.too.large') return sendError(res, 413, 'WICKET_ERR_LIMIT', 'request body too large');
    if (h.type === 'entity.parse.failed') return sendError(res, 400, 'WICKET_ERR_USAGE', 'request body is not valid JSON');
    if (typeof h.status === 'number' && h.status >= 400 && h.status < 500) {
      return sendError(res, h.status, 'WICKET_ERR_USAGE', errorMessage(err));
    }
    log(`error: ${req.method} ${req.path}: ${errorMessage(err)}`);
    sendError(res, 500, 'WICKET_ERR_INTERNAL', 'internal error');
  };
}
