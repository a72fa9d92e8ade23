import type { StoreConfig } from '../catalog/store/etcd-client.js';

/**
 * FULCRUM_ETCD_ENDPOINTS (comma-separated client URLs) replaces `store.etcd.endpoints` of the
 * config file, so a deployment can keep where etcd is in a Secret while every replica reads the
 * same file. Checked like the file's own list; an error names the variable.
 */
export const ETCD_ENDPOINTS_ENV = 'FULCRUM_ETCD_ENDPOINTS';

const URL_RE = /^https?:\/\/[^/\s]+\/?$/;

export function withEtcdEndpointsFromEnv(store: StoreConfig, env: NodeJS.ProcessEnv): StoreConfig {
  const raw = env[ETCD_ENDPOINTS_ENV];
  if (raw === undefined || raw.trim() === '') return store;
  if (store.kind !== 'etcd') throw new Error(`${ETCD_ENDPOINTS_ENV} is set but the config's store.kind is not etcd`);
  const endpoints = raw.split(',').map((u) => u.trim()).filter((u) => u !== '');
  const bad = endpoints.find((u) => !URL_RE.test(u));
  if (bad !== undefined) throw new Error(`${ETCD_ENDPOINTS_ENV}: "${bad}" is not an etcd client URL like http://10.0.0.1:2379`);
  const https = endpoints.filter((u) => u.startsWith('https://')).length;
  if (https > 0 && https < endpoints.length) throw new Error(`${ETCD_ENDPOINTS_ENV}: mixes http and https URLs`);
  if (https > 0 && store.etcd.tls?.ca === undefined) throw new Error(`${ETCD_ENDPOINTS_ENV}: https endpoints need store.etcd.tls.ca`);
  if (https === 0 && store.etcd.tls) throw new Error(`${ETCD_ENDPOINTS_ENV}: store.etcd.tls needs https endpoints`);
  return { kind: 'etcd', etcd: { ...store.etcd, endpoints } };
}
