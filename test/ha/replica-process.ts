/**
 * One HA replica as its own process, so a test can SIGKILL it: no goodbye to etcd, its lease
 * simply stops being renewed. Usage (from the repo root):
 *   HA_ETCD=http://127.0.0.1:1,... HA_PREFIX=/p HA_ID=r1 HA_CLUSTERS=12 [HA_TTL=3] node --import tsx test/ha/replica-process.ts
 * Prints `ready` once registered.
 */
import { fleetCatalog, startReplica } from './replicas.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is required`);
  return v;
};

const ttl = process.env.HA_TTL;
await startReplica(env('HA_ID'), env('HA_ETCD').split(','), fleetCatalog(Number(env('HA_CLUSTERS'))), env('HA_PREFIX'), ttl ? Number(ttl) : undefined);
process.stdout.write('ready\n');
setInterval(() => undefined, 60_000);
