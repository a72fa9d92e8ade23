import { randomUUID } from 'node:crypto';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import type { ExportedClusterState } from '../balancing/engine/index.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import { nameUnder, type HaKeys } from './keys.js';

/** What the weight share needs of the adaptive weights (src/weights/adaptive-weights.ts). */
export interface SharedWeights {
  current(): WeightOverrides;
  exportState(cluster: string): ExportedClusterState | undefined;
  importState(cluster: string, state: ExportedClusterState): number;
  setRemote(cluster: string, overrides: ReadonlyMap<string, EndpointOverride> | undefined): void;
}

/** `<prefix>/weights/<cluster>`: what the owner published and the state to continue from. */
export interface WeightRecord {
  readonly owner: string;
  /** The writing process: a restarted replica (same id) still takes its previous process's records. */
  readonly incarnation: string;
  readonly at: number;
  readonly overrides: Readonly<Record<string, EndpointOverride>>;
  readonly state: ExportedClusterState;
}

export interface WeightShareOptions {
  readonly client: Etcd3;
  readonly keys: HaKeys;
  readonly replicaId: string;
  readonly weights: SharedWeights;
  readonly log: Logger;
  /** An owned cluster whose published weights did not change has its state rewritten at most this often. */
  readonly stateRefreshMs: number;
  readonly now?: () => number;
}

/** Clusters per transaction: etcd allows 128 operations and 1.5 MiB per request by default. */
const BATCH = 32;

/**
 * Published weights through etcd. The owner of a cluster writes its overrides and controller
 * state when the overrides change (and the state every `stateRefreshMs` otherwise), in one
 * transaction per batch that requires each owner key to be the one it created: a replica that
 * lost a cluster cannot overwrite its successor. Every replica watches the records and serves the
 * overrides of the clusters it does not own; a new owner imports the record's state before its
 * first tick.
 */
export class WeightShare {
  private watch: PrefixWatch | undefined;
  /** Clusters whose overrides this replica serves from another's record. */
  private readonly remote = new Set<string>();
  private readonly written = new Map<string, Written>();
  private readonly incarnation = randomUUID();

  constructor(private readonly o: WeightShareOptions) {}

  async start(): Promise<void> {
    const dir = this.o.keys.weights;
    this.watch = new PrefixWatch({
      client: this.o.client,
      prefix: dir,
      // After a lost watch, records deleted meanwhile (clusters gone) are forgotten too.
      listed: (kvs) => {
        const present = new Set(kvs.map((kv) => nameUnder(dir, kv.key.toString())));
        for (const cluster of [...this.remote]) if (!present.has(cluster)) this.dropRemote(cluster);
        for (const kv of kvs) this.received(kv);
      },
      put: (kv) => this.received(kv),
      deleted: (kv) => {
        const cluster = nameUnder(dir, kv.key.toString());
        if (cluster !== undefined) this.dropRemote(cluster);
      },
      log: this.o.log,
      what: 'ha: weights watch',
    });
    await this.watch.start();
  }

  async stop(): Promise<void> {
    await this.watch?.stop();
    this.watch = undefined;
  }

  private dropRemote(cluster: string): void {
    this.remote.delete(cluster);
    this.o.weights.setRemote(cluster, undefined);
  }

  /** A new owner: continue from the last record's state, and serve its own ticks from now on. */
  async acquired(cluster: string): Promise<void> {
    const raw = await this.o.client.get(this.o.keys.weight(cluster)).string();
    const record = raw === null ? undefined : parseRecord(raw);
    const restored = record ? this.restore(cluster, record) : 0;
    this.dropRemote(cluster);
    this.written.delete(cluster);
    this.o.log.info({ cluster, from: record?.owner, restored }, 'ha: continuing the cluster from the last owner');
  }

  private restore(cluster: string, record: WeightRecord): number {
    try {
      return this.o.weights.importState(cluster, record.state);
    } catch (err) {
      // Another format (a replica of another version): start from the catalog rather than not at all.
      this.o.log.warn({ cluster, err: (err as Error).message }, 'ha: cannot import the last owner state');
      return 0;
    }
  }

  /** Writes what changed among `owned` (cluster → owner key create_revision); `force` writes them all. */
  async flush(owned: ReadonlyMap<string, string>, force = false): Promise<void> {
    const due: Due[] = [];
    const now = this.now();
    const current = this.o.weights.current();
    for (const [cluster, revision] of owned) {
      const overrides = current.get(cluster);
      const last = this.written.get(cluster);
      const recent = !force && last !== undefined && now - last.at < this.o.stateRefreshMs;
      // The very map written last time (AdaptiveWeights keeps it while the tick output stands): the
      // same content, without serializing every endpoint of every owned cluster on every flush.
      if (recent && last.overrides === overrides) continue;
      const body = JSON.stringify(Object.fromEntries(overrides ?? []));
      if (recent && last.body === body) continue;
      const state = this.o.weights.exportState(cluster);
      if (state === undefined) continue;
      due.push({ cluster, revision, overrides, body, record: recordJson(this.o.replicaId, this.incarnation, now, body, state) });
    }
    for (let i = 0; i < due.length; i += BATCH) await this.write(due.slice(i, i + BATCH), now);
  }

  /** The cluster left the catalog: its record goes too (only while `revision` is still the owner key's). */
  async retire(cluster: string, revision: string): Promise<void> {
    const { client, keys } = this.o;
    await client.if(keys.owner(cluster), 'Create', '==', revision).then(client.delete().key(keys.weight(cluster))).commit();
  }

  forget(cluster: string): void {
    this.written.delete(cluster);
  }

  private async write(batch: readonly Due[], now: number): Promise<void> {
    const [first, ...rest] = batch;
    if (first === undefined) return;
    const { client, keys } = this.o;
    let txn = client.if(keys.owner(first.cluster), 'Create', '==', first.revision);
    for (const d of rest) txn = txn.and(keys.owner(d.cluster), 'Create', '==', d.revision);
    const res = await txn.then(...batch.map((d) => client.put(keys.weight(d.cluster)).value(d.record))).commit();
    if (res.succeeded) {
      for (const d of batch) this.written.set(d.cluster, { overrides: d.overrides, body: d.body, at: now });
      return;
    }
    // Some owner key changed under us: write the others one by one; the lost ones are refused.
    if (batch.length > 1) for (const d of batch) await this.write([d], now);
    else this.o.log.warn({ cluster: first.cluster }, 'ha: weights not written: no longer the owner');
  }

  private received(kv: IKeyValue): void {
    const cluster = nameUnder(this.o.keys.weights, kv.key.toString());
    const record = parseRecord(kv.value.toString());
    // Our own records: what we publish locally is at least as new.
    if (cluster === undefined || record === undefined || record.incarnation === this.incarnation) return;
    this.remote.add(cluster);
    this.o.weights.setRemote(cluster, new Map(Object.entries(record.overrides)));
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }
}

interface Written {
  readonly overrides: ReadonlyMap<string, EndpointOverride> | undefined;
  readonly body: string;
  readonly at: number;
}

interface Due extends Omit<Written, 'at'> {
  readonly cluster: string;
  readonly revision: string;
  readonly record: string;
}

/** A WeightRecord's JSON around the overrides' already serialized `body` (not parsed back and serialized again). */
function recordJson(owner: string, incarnation: string, at: number, body: string, state: ExportedClusterState): string {
  const head = JSON.stringify({ owner, incarnation, at, state } satisfies Omit<WeightRecord, 'overrides'>);
  return `${head.slice(0, -1)},"overrides":${body}}`;
}

function parseRecord(raw: string): WeightRecord | undefined {
  try {
    const r = JSON.parse(raw) as Partial<WeightRecord>;
    return typeof r.owner === 'string' && typeof r.overrides === 'object' && r.overrides !== null && typeof r.state === 'object' && r.state !== null
      ? (r as WeightRecord)
      : undefined;
  } catch {
    return undefined;
  }
}
