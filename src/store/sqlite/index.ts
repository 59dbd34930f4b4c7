export { SqliteStore } from './store.js';
export { MIGRATIONS } from './migrations.js';
