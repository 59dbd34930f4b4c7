/**
 * Local `protocol: shell` targets: the ssh and web adapters call spawnLocal() instead of opening
 * an upstream connection, and relay the LocalProcess like an upstream channel.
 */
export { type Account, groupsOf, parsePasswd } from './account.js';
export {
  type LocalProcess,
  type ShellSpawn,
  EXIT_DRAIN_MS,
  KILL_GRACE_MS,
  MAX_TERMINAL_SIZE,
  OUTPUT_HIGH_WATER,
  SFTP_SERVER_PATHS,
  SHELLS,
  SIGNALS,
  buildArgv,
  spawnLocal,
} from './process.js';
