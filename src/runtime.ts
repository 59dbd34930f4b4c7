/**
 * A running broker: config holder, store, audit writer, live-session
 * registry and the listeners. `wicket serve` and the integration tests both
 * start it through here.
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { ConfigHolder } from './config/reload.js';
import type { Config } from './config/schema.js';
import { openStore } from './store/open.js';
import type { AuditInput, Store } from './store/types.js';
import { AuditWriter } from './audit/writer.js';
import { Notifier } from './notify/notifier.js';
import { AccessService } from './access/service.js';
import { Broker } from './broker.js';
import { ensureHostKeys, type HostKeys } from './keys.js';
import { listen } from './util/listen.js';
import { createApp } from '../web/app.js';
import { attachLive, type LiveServer } from '../web/live.js';
import { attachTerminal, type TerminalServer } from '../web/terminal.js';
import { Throttle } from './auth/throttle.js';
import { startPostgres, DEFAULT_MAX_MESSAGE_BYTES } from '../protocols/postgres/index.js';
import { startSsh } from '../protocols/ssh/index.js';
import { startMysql, DEFAULT_MAX_PACKET_BYTES } from '../protocols/mysql/index.js';

export interface Running {
  readonly config: () => Config;
  readonly store: Store;
  readonly audit: AuditWriter;
  readonly broker: Broker;
  /** Just-in-time requests and grants (the CLI and the HTTP API use the same rules). */
  readonly access: AccessService;
  readonly keys: HostKeys;
  /** Bound addresses by listener name. */
  readonly addresses: Readonly<Record<string, string>>;
  reload(): ReturnType<ConfigHolder['reload']>;
  stop(reason: string): Promise<void>;
}

export interface StartOptions {
  readonly log?: (line: string) => void;
  readonly pollMs?: number;
}

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function startWicket(configPath: string, opts: StartOptions = {}): Promise<Running> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const holder = new ConfigHolder(configPath);
  const config = holder.current;
  for (const w of config.warnings) log(`warning: ${w}`);
  const notifier = new Notifier({ config: () => holder.current, log }); // webhooks (notify:); throws on an unresolvable secret
  const { keys, created } = await ensureHostKeys(config.dataDir);
  for (const p of created) log(`created ${p}`);
  const store = await openStore(config.store, config.dataDir);
  const audit = new AuditWriter(store, config.dataDir);
  let recordingProblem: string | null = null;
  audit.onFailure((err) => {
    recordingProblem = `audit log cannot be written: ${err.message}`;
    log(`error: ${recordingProblem}; refusing sessions`);
  });
  const broker = new Broker({ config: () => holder.current, store, audit, pollMs: opts.pollMs });
  await broker.start();
  await notifier.start(store, broker.brokerId);
  /** Durable audit append for the access service and the web endpoints (they report success only once it is written). */
  const auditNow = async (e: AuditInput): Promise<void> => void (await audit.appendNow(e));
  const access = new AccessService({ config: () => holder.current, store, audit: auditNow });
  // Pending requests and grants lapse on their own: record it (request.expired, grant.expired) every second.
  // The broker itself ends sessions at their grant's expiry.
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    access.expireDue().catch((err: unknown) => log(`access expiry sweep: ${err instanceof Error ? err.message : String(err)}`)).finally(() => (sweeping = false));
  }, 1000);
  sweep.unref();
  await audit.appendNow({ ts: Date.now(), kind: 'broker.start', actor: 'wicket', data: { broker: broker.brokerId, config: config.path, configHash: config.hash } });

  const servers: Server[] = [];
  const addresses: Record<string, string> = {};
  const version = packageVersion();
  let live: LiveServer | null = null;
  let terminal: TerminalServer | null = null;
  if (config.listen.web) {
    const web = createServer(createApp({
      broker, version, unhealthy: () => recordingProblem, log,
      config: () => holder.current, store, audit: auditNow, access,
    }));
    // WS /api/terminal (web/terminal.ts) answers its own path and hands every other upgrade on,
    // so WS /api/sessions/:id/live (web/live.ts) attaches to those: the upgrade requests Express never sees.
    terminal = attachTerminal(web, { broker, store, config: () => holder.current, audit: auditNow, log, limits: { upstreamTimeoutMs: 15_000 } });
    live = attachLive(terminal.otherUpgrades, { broker, store, config: () => holder.current, audit: auditNow, log });
    addresses.web = await listen(web, config.listen.web, 'web');
    servers.push(web);
    log(`web listening on http://${addresses.web} (GET /healthz)`);
  }

  const report = (r: ReturnType<ConfigHolder['reload']>): ReturnType<ConfigHolder['reload']> => {
    if (r.ok) {
      log(`config reloaded${r.changed ? '' : ' (unchanged)'}: ${holder.current.hash.slice(0, 12)}`);
      audit.append({ ts: Date.now(), kind: 'config.reload', actor: 'wicket', data: { config: holder.current.path, configHash: holder.current.hash, changed: r.changed } });
    } else {
      log(`config reload failed, keeping the running policy:\n${r.error}`);
      audit.append({ ts: Date.now(), kind: 'config.reload_failed', actor: 'wicket', data: { config: holder.current.path, error: r.error } });
    }
    return r;
  };
  const throttle = new Throttle();
  const closers: (() => Promise<void>)[] = [];
  if (config.listen.postgres) {
    const pg = await startPostgres(config.listen.postgres, {
      config: () => holder.current, broker, store, audit, keys, throttle, log, access,
      maxMessageBytes: config.limits.max_message_bytes ?? DEFAULT_MAX_MESSAGE_BYTES, authTimeoutMs: 30_000,
    });
    closers.push(pg.close);
    addresses.postgres = pg.address;
    log(`postgres listening on ${pg.address}`);
  }

  if (config.listen.ssh) {
    const ssh = await startSsh(config.listen.ssh, {
      config: () => holder.current, broker, store, audit, keys, throttle, log, access, authTimeoutMs: 30_000, upstreamTimeoutMs: 15_000,
    });
    closers.push(ssh.close);
    addresses.ssh = ssh.address;
    log(`ssh listening on ${ssh.address}`);
  }
  if (config.listen.mysql) {
    const my = await startMysql(config.listen.mysql, {
      config: () => holder.current, broker, store, audit, keys, throttle, log, access,
      maxPacketBytes: config.limits.max_message_bytes ?? DEFAULT_MAX_PACKET_BYTES, authTimeoutMs: 30_000,
    });
    closers.push(my.close);
    addresses.mysql = my.address;
    log(`mysql listening on ${my.address}`);
  }

  const reload = (): ReturnType<ConfigHolder['reload']> => report(holder.reload());
  const unwatch = holder.watchSighup((r) => void report(r));

  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      unwatch();
      clearInterval(sweep);
      for (const s of servers) s.close();
      await broker.shutdown(reason);
      live?.close(); // watchers got their 'end' from the shutdown; cut any still lingering
      terminal?.close(); // their sessions were ended by the shutdown; cut the sockets
      await Promise.all(closers.map((c) => c()));
      await audit.appendNow({ ts: Date.now(), kind: 'broker.stop', actor: 'wicket', data: { broker: broker.brokerId, reason } }).catch(() => undefined);
      await audit.close();
      await notifier.stop();
      await store.close();
      for (const s of servers) s.closeAllConnections?.();
    })());

  return { config: () => holder.current, store, audit, broker, access, keys, addresses, reload, stop };
}
