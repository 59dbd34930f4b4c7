/** What every protocol adapter gets from the running broker (runtime.ts builds it once). */
import type { Config } from './config/schema.js';
import type { Broker } from './broker.js';
import type { Store } from './store/types.js';
import type { AuditWriter } from './audit/writer.js';
import type { HostKeys } from './keys.js';
import type { Throttle } from './auth/throttle.js';
import type { AccessService } from './access/service.js';

export interface AdapterDeps {
  readonly config: () => Config;
  readonly broker: Broker;
  readonly store: Store;
  readonly audit: AuditWriter;
  readonly keys: HostKeys;
  /** Failed logins, shared by all adapters: per user and per source host. */
  readonly throttle: Throttle;
  readonly log: (line: string) => void;
  /** Handshake + authentication must finish within this. */
  readonly authTimeoutMs: number;
  /** Just-in-time requests (the SSH login can create one and wait for its approval). */
  readonly access?: AccessService;
}
