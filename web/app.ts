/**
 * The HTTP app (DESIGN.md §6). For now: the health check that load
 * balancers, Docker's HEALTHCHECK and tests poll. The API and viewer mount
 * here in later issues.
 */
import express, { type Express } from 'express';
import type { Broker } from '../src/broker.js';

export interface WebDeps {
  readonly broker: Broker;
  readonly version: string;
  /** null when healthy; a reason when the broker cannot serve (e.g. recording failed). */
  readonly unhealthy: () => string | null;
}

export function createApp(deps: WebDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false); // identity and addresses never come from client-supplied headers
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
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'WICKET_ERR_NOT_FOUND', message: 'not found' } });
  });
  return app;
}
