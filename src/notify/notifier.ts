/**
 * The Notifier follows the audit log and fans matching events out to the
 * configured webhooks. It polls `store.readAudit` (every 500 ms by default)
 * from the log's end at start, so it sees the broker's own events and those
 * the CLI writes from another process alike; events written while no broker
 * ran are not sent later.
 *
 * It is never on a session's path: polling runs on its own timer, delivery on
 * each webhook's own pump (webhook.ts), and nothing here throws into callers
 * after construction. With no `notify:` entries it reads nothing.
 * On reload (a new Config object) the webhooks are rebuilt; an unresolvable
 * secret keeps the previous set and is logged.
 */
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Store } from '../store/types.js';
import { resolveWebhooks } from './config.js';
import { buildPayload, notifyKind } from './events.js';
import { Webhook, type DeliveryOptions, type WebhookSpec } from './webhook.js';

export interface NotifierOptions extends DeliveryOptions {
  readonly config: () => Config;
  readonly env?: NodeJS.ProcessEnv;
  /** Audit poll interval. Default 500 ms. */
  readonly pollMs?: number;
  /** Audit events read per store call. Default 500. */
  readonly pageSize?: number;
  /** At stop(), how long queued deliveries may still take (one attempt each). Default 2000 ms. */
  readonly shutdownGraceMs?: number;
}

type State = 'new' | 'running' | 'stopped';

const specKey = (s: WebhookSpec): string => JSON.stringify([s.label, s.url, s.events, s.secret ?? null, s.format]);

export class Notifier {
  readonly #opts: NotifierOptions;
  readonly #log: (line: string) => void;
  #state: State = 'new';
  #config: Config;
  #hooks: Webhook[] = [];
  /** Removed by a reload, still draining. */
  readonly #retiring = new Set<Promise<void>>();
  #store: Store | null = null;
  #broker = '';
  /** Last audit seq looked at; null = start from the log's end at the next poll. */
  #cursor: number | null = null;
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> | null = null;
  #readFailing = false;

  /** Resolves the webhooks' secrets now: throws WicketError('WICKET_ERR_CONFIG') when one cannot be. */
  constructor(opts: NotifierOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? (() => undefined);
    this.#config = opts.config();
    const { specs, warnings } = resolveWebhooks(this.#config, opts.env);
    for (const w of warnings) this.#log(`warning: ${w}`);
    this.#hooks = specs.map((s) => this.#webhook(s));
  }

  get webhooks(): readonly Webhook[] {
    return this.#hooks;
  }

  /** Starts polling at the current end of the audit log. */
  async start(store: Store, brokerId: string): Promise<void> {
    if (this.#state !== 'new') return;
    this.#store = store;
    this.#broker = brokerId;
    this.#state = 'running';
    if (this.#hooks.length > 0) this.#cursor = (await store.auditHead()).lastSeq;
    this.#timer = setInterval(() => void this.tick(), this.#opts.pollMs ?? 500);
    this.#timer.unref();
  }

  /** One poll (also run by the timer). Never rejects. */
  tick(): Promise<void> {
    if (this.#state !== 'running') return Promise.resolve();
    return (this.#ticking ??= this.#poll().finally(() => {
      this.#ticking = null;
    }));
  }

  /**
   * Stops polling after one last read (so events of the shutdown itself, such
   * as sessions it terminated, still go out), then gives queued deliveries
   * `shutdownGraceMs` and drops the rest. Call before the store closes.
   */
  async stop(): Promise<void> {
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#ticking;
    await this.#poll();
    this.#state = 'stopped';
    const grace = this.#opts.shutdownGraceMs ?? 2000;
    await Promise.all([...this.#hooks.map((h) => h.close(grace)), ...this.#retiring]);
  }

  #webhook(spec: WebhookSpec): Webhook {
    return new Webhook(spec, { ...this.#opts, log: this.#log });
  }

  /** Picks up a reloaded config: rebuilds the webhooks, keeping unchanged ones (and their queues). */
  #reconfigure(config: Config): void {
    this.#config = config;
    let specs: WebhookSpec[];
    try {
      const r = resolveWebhooks(config, this.#opts.env);
      for (const w of r.warnings) this.#log(`warning: ${w}`);
      specs = r.specs;
    } catch (e) {
      this.#log(`notify: reloaded config not applied to webhooks, keeping the previous ones:\n${errorMessage(e)}`);
      return;
    }
    const old = new Map(this.#hooks.map((h) => [specKey(h.spec), h]));
    const next = specs.map((s) => {
      const key = specKey(s);
      const kept = old.get(key);
      old.delete(key);
      return kept ?? this.#webhook(s);
    });
    for (const gone of old.values()) {
      const p = gone.close(this.#opts.shutdownGraceMs ?? 2000).finally(() => this.#retiring.delete(p));
      this.#retiring.add(p);
    }
    if (next.length === 0 || this.#hooks.length === 0) this.#cursor = null;
    this.#hooks = next;
  }

  async #poll(): Promise<void> {
    const store = this.#store;
    if (store === null) return;
    try {
      const config = this.#opts.config();
      if (config !== this.#config) this.#reconfigure(config);
      if (this.#hooks.length === 0) return;
      if (this.#cursor === null) {
        this.#cursor = (await store.auditHead()).lastSeq;
        return;
      }
      const pageSize = this.#opts.pageSize ?? 500;
      for (;;) {
        const page = await store.readAudit(this.#cursor, pageSize);
        for (const ev of page) {
          this.#cursor = ev.seq;
          const kind = notifyKind(ev);
          if (kind === null) continue;
          const payload = buildPayload(ev, kind, this.#broker);
          for (const h of this.#hooks) if (h.wants(kind)) h.enqueue(payload);
        }
        if (page.length < pageSize) break;
      }
      if (this.#readFailing) this.#log('notify: reading the audit log works again');
      this.#readFailing = false;
    } catch (e) {
      // The next poll retries from the same seq; say so once per outage.
      if (!this.#readFailing) this.#log(`notify: cannot read the audit log (will retry): ${errorMessage(e)}`);
      this.#readFailing = true;
    }
  }
}
