export * from './schema.js';
export { loadConfig, parseConfig } from './load.js';
export { ConfigHolder, type ReloadResult } from './reload.js';
export { resolveConfigPath, DEFAULT_CONFIG_FILE } from './find.js';
export { formatPath, type ConfigPath } from './locate.js';
export { SECRET_FIELDS, type SecretField } from './secrets.js';
