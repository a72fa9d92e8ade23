/** The durable store: see store.ts for the ownership rule (config file vs API vs Kubernetes). */
export { openStore, Store, DEFAULT_DATA_DIR, DB_FILE, canonicalJson } from './store.js';
export type { CatalogStore, MaybePromise, StoreDescription, StoreHealth } from './catalog-store.js';
// The etcd store and client are imported from their own files, on demand: importing etcd3 costs
// ~28 MiB and ~300 ms of a cold start that a SQLite configuration never needs.
export type { EtcdStore, EtcdStoreOptions } from './etcd-store.js';
export { DEFAULT_ETCD_PREFIX, DEFAULT_STORE_CONFIG, type EtcdSettings, type EtcdTls, type StoreConfig } from './store-config.js';
export type { StoreOptions, StoreSettings } from './store.js';
export type { ChangeListener } from './catalog-store.js';
export { ConflictError, NotFoundError, OwnershipError, StoreError, StoreLimitError, StoreUnavailableError } from './errors.js';
export { MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, migrate } from './migrations.js';
export { OPERATOR_STATES, auditedAction } from './records.js';
export { overrideName, POLICY_FIELDS } from './override-records.js';
export type * from './override-records.js';
export type * from './records.js';
