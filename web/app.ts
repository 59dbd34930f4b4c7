/**
 * The HTTP app (DESIGN.md §6): the health check that load balancers,
 * Docker's HEALTHCHECK and tests poll, the JSON API under /api (login, me,
 * sessions and their recordings, kill, audit and its verification, the
 * access map, just-in-time requests, segment lockdown), and the viewer's
 * pages (web/static.ts, web/public). The live tail is a WebSocket on the
 * same server (web/live.ts).
 *
 * API responses are JSON; every response carries the security headers
 * (CSP without inline scripts, no framing, nosniff, no referrer). No CORS
 * headers are ever sent (the viewer is same-origin), request bodies are
 * capped, and `trust proxy` stays off: identity and addresses never come
 * from client-supplied headers.
 */
import express, { type Express } from 'express';
import type { Broker } from '../src/broker.js';
import type { Config } from '../src/config/schema.js';
import type { AuditInput, Store } from '../src/store/types.js';
import { AccessService } from '../src/access/service.js';
import { Throttle } from '../src/auth/throttle.js';
import { authenticate, loginRouter, WebSessions, type AuthDeps } from './api/auth.js';
import { errorHandler, sendError } from './api/errors.js';
import { requestsRouter } from './api/requests.js';
import { segmentsRouter } from './api/segments.js';
import { auditRouter } from './api/audit.js';
import { mapRouter } from './api/map.js';
import { meRouter } from './api/me.js';
import { sessionsRouter } from './api/sessions.js';
import { securityHeaders, viewerRouter } from './static.js';

/** Request bodies above this are refused with 413 before they are parsed. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface WebDeps {
  readonly broker: Broker;
  readonly version: string;
  /** null when healthy; a reason when the broker cannot serve (e.g. recording failed). */
  readonly unhealthy: () => string | null;
  readonly config: () => Config;
  readonly store: Store;
  /** Durable audit append: resolves once the event is chained. */
  readonly audit: (e: AuditInput) => Promise<void>;
  readonly clock?: () => number;
  readonly log?: (line: string) => void;
  /** Defaults to one built from config, store, audit and clock. */
  readonly access?: AccessService;
  /** Failed-login throttle; defaults to the app's own. */
  readonly throttle?: Throttle;
}

export function createApp(deps: WebDeps): Express {
  const clock = deps.clock ?? Date.now;
  const log = deps.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const access = deps.access ?? new AccessService({ config: deps.config, store: deps.store, audit: deps.audit, clock });
  const auth: AuthDeps = {
    config: deps.config, store: deps.store, audit: deps.audit, clock,
    throttle: deps.throttle ?? new Throttle(), sessions: new WebSessions(),
  };
  const json = express.json({ limit: MAX_BODY_BYTES, type: 'application/json', strict: true });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false); // identity and addresses never come from client-supplied headers
  app.use(securityHeaders); // CSP, nosniff, no-referrer, no framing on every response (web/static.ts)
  app.get('/healthz', (_req, res) => {
    const problem = deps.unhealthy();
    res.status(problem ? 503 : 200).json({
      status: problem ? 'unhealthy' : 'ok',
      problem,
      version: deps.version,
      broker: deps.broker.brokerId,
      live_sessions: deps.broker.liveSessions().length,
    });
  });

  app.use('/api', (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use('/api/login', json);
  app.use('/api', loginRouter(auth));
  app.use('/api', authenticate(auth)); // everything below needs a caller
  app.use('/api', json);
  app.use('/api/requests', requestsRouter({ config: deps.config, access }));
  app.use('/api/segments', segmentsRouter({ config: deps.config, store: deps.store, audit: deps.audit, clock }));
  app.use('/api/me', meRouter({ config: deps.config }));
  app.use('/api/sessions', sessionsRouter({ config: deps.config, store: deps.store, audit: deps.audit, clock }));
  app.use('/api/audit', auditRouter({ config: deps.config, store: deps.store }));
  app.use('/api/map', mapRouter({ config: deps.config, store: deps.store }));

  app.use(viewerRouter()); // the browser viewer: web/public pages, /js, /css, /vendor
  app.use((_req, res) => sendError(res, 404, 'WICKET_ERR_NOT_FOUND', 'not found'));
  app.use(errorHandler(log));
  return app;
}
