/** The durable store: see store.ts for the ownership rule (config file vs API vs Kubernetes). */
export { openStore, Store, DEFAULT_DATA_DIR, DB_FILE, canonicalJson } from './store.js';
export type { CatalogStore, MaybePromise, StoreDescription, StoreHealth } from './catalog-store.js';
export { openEtcdStore, EtcdStore, type EtcdStoreOptions } from './etcd-store.js';
export { buildEtcdClient, etcdClientOptions, DEFAULT_ETCD_PREFIX, DEFAULT_STORE_CONFIG, type EtcdSettings, type EtcdTls, type StoreConfig } from './etcd-client.js';
export type { StoreOptions, StoreSettings } from './store.js';
export type { ChangeListener } from './catalog-store.js';
export { ConflictError, NotFoundError, OwnershipError, StoreError, StoreLimitError, StoreUnavailableError } from './errors.js';
export { MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, migrate } from './migrations.js';
export { OPERATOR_STATES, auditedAction } from './records.js';
export type * from './records.js';
