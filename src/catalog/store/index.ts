/** The durable store: see store.ts for the ownership rule (config file vs API vs Kubernetes). */
export { openStore, Store, DEFAULT_DATA_DIR, DB_FILE, canonicalJson } from './store.js';
export type { CatalogStore, MaybePromise, StoreDescription, StoreHealth } from './catalog-store.js';
export type { StoreOptions, StoreSettings } from './store.js';
export type { ChangeListener } from './catalog-store.js';
export { ConflictError, NotFoundError, OwnershipError, StoreError, StoreLimitError, StoreUnavailableError } from './errors.js';
export { MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, migrate } from './migrations.js';
export { OPERATOR_STATES } from './records.js';
export type * from './records.js';
