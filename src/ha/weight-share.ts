import { randomUUID } from 'node:crypto';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import type { ExportedClusterState, ExportedDrain, ExportedEndpoint } from '../balancing/engine/index.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import { nameUnder, type HaKeys } from './keys.js';
import { monotonicNow } from '../runtime/monotonic-clock.js';

/** What the weight share needs of the adaptive weights (src/weights/adaptive-weights.ts). */
export interface SharedWeights {
  current(): WeightOverrides;
  exportState(cluster: string): ExportedClusterState | undefined;
  /** `now`: this replica's engine clock (exported times later than it are taken as it). */
  importState(cluster: string, state: ExportedClusterState, now: number): number;
  /** For a cluster taken over with nothing imported (AdaptiveWeights.forgetNewcomers). */
  forgetNewcomers(cluster: string): void;
  setRemote(cluster: string, overrides: ReadonlyMap<string, EndpointOverride> | undefined): void;
}

/** `<prefix>/ha/served/<cluster>`: the overrides the owner serves, written at every change. */
export interface ServedRecord {
  readonly owner: string;
  /** The writing process: a restarted replica (same id) still takes its previous process's records. */
  readonly incarnation: string;
  readonly at: number;
  readonly overrides: Readonly<Record<string, EndpointOverride>>;
}

/** `<prefix>/ha/weights/<cluster>`: what the owner published and the state to continue from, every `stateRefreshMs`. */
export interface WeightRecord extends ServedRecord {
  readonly state: ExportedClusterState;
}

export interface WeightShareOptions {
  readonly client: Etcd3;
  readonly keys: HaKeys;
  readonly replicaId: string;
  readonly weights: SharedWeights;
  readonly log: Logger;
  /**
   * An owned cluster's controller state is written this often (its overrides at every change):
   * the state is ~450 B per endpoint, nine tenths of a record, and with it at every tick etcd took
   * ~1 MB/s at 100 clusters × 20 endpoints whose weights move.
   */
  readonly stateRefreshMs: number;
  readonly now?: () => number;
}

/** The two directories of published records. */
type RecordDir = 'weights' | 'served';

/** Clusters per transaction: etcd allows 128 operations per request by default. */
const BATCH = 32;
/**
 * Bytes of keys and records per transaction: etcd refuses a request over 1.5 MiB by default
 * (--max-request-bytes), and 32 state records of 100 endpoints already pass it; the rest is left
 * for the compares and the framing. A record larger alone is written with its state cut down to
 * the ejections (WeightShare.fitting), else without its state.
 */
const BATCH_BYTES = 1024 * 1024;

/**
 * Published weights through etcd. The owner of a cluster writes its overrides to `served/` when
 * they change, and its controller state with them to `weights/` every `stateRefreshMs`, in one
 * transaction per batch that requires each owner key to be the one it created: a replica that
 * lost a cluster cannot overwrite its successor. Every replica watches both and serves the newest
 * overrides (by etcd revision) of the clusters it does not own; a new owner imports the last
 * state, carried onto the overrides served since (`reanchored`), before its first tick. (A replica
 * of an earlier version reads `weights/` only: until it is upgraded too, it serves another
 * owner's weights up to `stateRefreshMs` late, and a cluster it takes over continues from a
 * state that old, so its first publish may move further than the step limit; and its `retire`
 * leaves a `served/` record behind, served by newer replicas until the cluster's next owner
 * writes.)
 */
export class WeightShare {
  private watches: PrefixWatch[] = [];
  /** Clusters whose overrides this replica serves from another replica's record. */
  private readonly serving = new Set<string>();
  /**
   * Per cluster, the etcd revision at or below which nothing is news: the last record applied, the
   * delete or listing that dropped it, or the read a new owner continued from. The two watches, a
   * re-list or a late event of the previous owner can deliver an older record after a newer event.
   */
  private readonly seen = new Map<string, number>();
  private readonly written = new Map<string, Written>();
  /** Clusters with a record under weights/ and under served/ (any writer's, this one's too). */
  private readonly recorded: Record<RecordDir, Set<string>> = { weights: new Set(), served: new Set() };
  private readonly incarnation = randomUUID();
  /** Clusters whose record was found too large for one etcd request (warned once). */
  private readonly oversize = new Set<string>();
  /** Clusters whose records were deleted because none fits (unshared): until one is written again. */
  private readonly unshared = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  /** Forced flushes (hand-overs) queued and not yet started, gathered into one. */
  private forced: { readonly clusters: Map<string, string>; readonly run: Promise<void> } | undefined;

  constructor(private readonly o: WeightShareOptions) {}

  async start(): Promise<void> {
    const { weights, served } = this.o.keys;
    this.watches = [
      new PrefixWatch({
        client: this.o.client,
        prefix: weights,
        // After a lost watch, records deleted meanwhile (clusters gone) are forgotten too.
        listed: (kvs, revision) => {
          const present = this.relisted('weights', kvs);
          for (const cluster of [...this.serving]) if (!present.has(cluster)) this.dropRemote(cluster, revision);
          for (const kv of kvs) this.received(weights, kv);
        },
        put: (kv) => this.received(weights, kv),
        deleted: (kv) => this.deleted('weights', kv),
        log: this.o.log,
        what: 'ha: weights watch',
      }),
      new PrefixWatch({
        client: this.o.client,
        prefix: served,
        listed: (kvs) => {
          this.relisted('served', kvs);
          for (const kv of kvs) this.received(served, kv);
        },
        put: (kv) => this.received(served, kv),
        deleted: (kv) => this.deleted('served', kv),
        log: this.o.log,
        what: 'ha: served weights watch',
      }),
    ];
    try {
      for (const w of this.watches) await w.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
    this.watches = [];
  }

  /** The clusters with records under `dir` as listed (replacing what was known); returns them. */
  private relisted(dir: RecordDir, kvs: readonly IKeyValue[]): Set<string> {
    const set = this.recorded[dir];
    set.clear();
    for (const kv of kvs) {
      const cluster = nameUnder(this.o.keys[dir], kv.key.toString());
      if (cluster !== undefined) set.add(cluster);
    }
    return set;
  }

  private deleted(dir: RecordDir, kv: IKeyValue): void {
    const cluster = nameUnder(this.o.keys[dir], kv.key.toString());
    if (cluster !== undefined) this.recorded[dir].delete(cluster);
    this.dropRemote(cluster, Number(kv.mod_revision));
  }

  /** Every cluster with a record in etcd, whoever wrote it. */
  recordedClusters(): Set<string> {
    return new Set([...this.recorded.weights, ...this.recorded.served]);
  }

  /**
   * Deletes the records of a cluster no replica holds (its owner died, and the cluster left the
   * catalog meanwhile: nobody retires it), only while no owner key exists.
   */
  sweep(cluster: string): Promise<void> {
    return this.serial(async () => void (await this.deleteRecords(cluster, 0)));
  }

  /** Deletes a cluster's two records if its owner key was created at `ownerCreated` (0: no owner key). */
  private async deleteRecords(cluster: string, ownerCreated: number | string): Promise<boolean> {
    const { client, keys } = this.o;
    const gone = [keys.weight(cluster), keys.servedWeight(cluster)].map((key) => client.delete().key(key));
    return (await client.if(keys.owner(cluster), 'Create', '==', ownerCreated).then(...gone).commit()).succeeded;
  }

  /** Stops serving another replica's overrides for the cluster; records up to `revision` are old news. */
  private dropRemote(cluster: string | undefined, revision: number): void {
    if (cluster === undefined) return;
    this.seen.set(cluster, Math.max(this.seen.get(cluster) ?? -1, revision));
    this.serving.delete(cluster);
    this.o.weights.setRemote(cluster, undefined);
  }

  /** A new owner: continue from the last record's state, and serve its own ticks from now on. */
  async acquired(cluster: string): Promise<void> {
    const [full, served] = await Promise.all([this.read(this.o.keys.weight(cluster), parseRecord), this.read(this.o.keys.servedWeight(cluster), parseServed)]);
    // Overrides served after the state was written: the state is carried onto them, so the first tick moves from what Envoys have.
    const record = full && served && served.revision > full.revision ? { ...full.record, state: reanchored(full.record.state, served.record.overrides) } : full?.record;
    const restored = record ? this.restore(cluster, record) : 0;
    // Nothing continued from: this replica's own state of the cluster predates the last owner, and
    // an endpoint it marked a newcomer since may have served for hours (an import clears them too).
    if (restored === 0) this.o.weights.forgetNewcomers(cluster);
    // What the previous owner wrote (all of it before this replica's owner key) is continued from,
    // not served if it arrives late; a later owner's records, if this one loses the cluster, are news.
    this.dropRemote(cluster, Math.max(full?.revision ?? -1, served?.revision ?? -1));
    this.written.delete(cluster);
    this.o.log.info({ cluster, from: record?.owner, restored }, 'ha: continuing the cluster from the last owner');
  }

  /** The record under `key` and its revision. */
  private async read<T>(key: string, parse: (raw: string) => T | undefined): Promise<{ record: T; revision: number } | undefined> {
    const kv = (await this.o.client.get(key).exec()).kvs[0];
    const record = kv === undefined ? undefined : parse(kv.value.toString());
    return kv === undefined || record === undefined ? undefined : { record, revision: Number(kv.mod_revision) };
  }

  private restore(cluster: string, record: WeightRecord): number {
    try {
      return this.o.weights.importState(cluster, record.state, this.now());
    } catch (err) {
      // Another format (a replica of another version): start from the catalog rather than not at all.
      this.o.log.warn({ cluster, err: (err as Error).message }, 'ha: cannot import the last owner state');
      return 0;
    }
  }

  /**
   * Writes what changed among `owned` (cluster → owner key create_revision): overrides that changed
   * to `served/`, and with the state to `weights/` every `stateRefreshMs`; `force` writes them all
   * with their state (a hand-over).
   */
  flush(owned: ReadonlyMap<string, string>, force = false): Promise<void> {
    if (!force) return this.serial(() => this.flushNow(owned, false));
    // Hand-overs waiting their turn go together (a stopping replica releases every cluster at
    // once): one forced flush, 32 clusters per transaction, not one transaction after another.
    if (this.forced === undefined) {
      const clusters = new Map<string, string>();
      const run = this.serial(() => {
        this.forced = undefined;
        return this.flushNow(clusters, true);
      });
      this.forced = { clusters, run };
    }
    for (const [cluster, revision] of owned) this.forced.clusters.set(cluster, revision);
    return this.forced.run;
  }

  private async flushNow(owned: ReadonlyMap<string, string>, force: boolean): Promise<void> {
    const due: Due[] = [];
    const now = this.now();
    const current = this.o.weights.current();
    for (const [cluster, revision] of owned) {
      const overrides = current.get(cluster);
      const last = this.written.get(cluster);
      const stateDue = force || last === undefined || now - last.stateAt >= this.o.stateRefreshMs;
      // The very map written last time (AdaptiveWeights keeps it while the tick output stands): the
      // same content, without serializing every endpoint of every owned cluster on every flush.
      if (!stateDue && last.overrides === overrides) continue;
      const body = JSON.stringify(Object.fromEntries(overrides ?? []));
      if (!stateDue && last.body === body) continue;
      const state = stateDue ? this.o.weights.exportState(cluster) : undefined;
      if (stateDue && state === undefined) continue;
      const d = this.fitting({ cluster, revision, overrides, body, withState: state !== undefined, record: recordJson(this.o.replicaId, this.incarnation, now, body, state) }, now, state);
      if (d !== undefined) due.push(d);
      else if (!this.unshared.has(cluster)) await this.unshare(cluster, revision);
    }
    for (const batch of batches(due, BATCH, BATCH_BYTES)) await this.write(batch, now);
  }

  /**
   * A cluster none of whose records fits: its last records (from when it was smaller) go, or the
   * other replicas would serve their stale weights, and keep out endpoints back since, for good.
   */
  private async unshare(cluster: string, revision: string): Promise<void> {
    if (await this.deleteRecords(cluster, revision)) this.unshared.add(cluster);
  }

  /**
   * The record as it fits in one etcd request: with its state if it can, else with the state cut
   * down to its ejections (protectionsOf: the next owner starts from the served weights, not the
   * controller's memory, and keeps the ejected endpoints out), else the overrides alone (the
   * ejections are lost with the rest), else none.
   */
  private fitting(d: Due, now: number, state?: ExportedClusterState): Due | undefined {
    if (recordBytes(d) <= BATCH_BYTES) return d;
    const record = (s?: ExportedClusterState): Due => ({ ...d, withState: s !== undefined, record: recordJson(this.o.replicaId, this.incarnation, now, d.body, s) });
    const smaller = d.withState ? [...(state === undefined ? [] : protectionsOf(state)), undefined] : [];
    let fit: Due | undefined;
    for (const s of smaller) {
      const r = record(s);
      if (recordBytes(r) > BATCH_BYTES) continue;
      fit = r;
      break;
    }
    if (!this.oversize.has(d.cluster)) {
      this.oversize.add(d.cluster);
      const what = fit === undefined
        ? 'weights not shared (other replicas serve the catalog\'s)'
        : fit.withState
          ? 'controller state not shared but for its ejections (a new owner starts from the served weights)'
          : 'controller state not shared (a new owner starts from the served weights, its ejections lost)';
      this.o.log.warn({ cluster: d.cluster, bytes: recordBytes(d), limit: BATCH_BYTES }, `ha: the cluster's weight record exceeds one etcd request: ${what}`);
    }
    return fit;
  }

  /**
   * The cluster left the catalog: its records go, and the owner key with them in the same
   * transaction (only while `revision` is still the owner key's), so a flush in flight, fenced on
   * that key, cannot write a record back after them.
   */
  retire(cluster: string, revision: string): Promise<void> {
    return this.serial(() => this.retireNow(cluster, revision));
  }

  private async retireNow(cluster: string, revision: string): Promise<void> {
    const { client, keys } = this.o;
    const gone = [keys.weight(cluster), keys.servedWeight(cluster), keys.owner(cluster)].map((key) => client.delete().key(key));
    await client.if(keys.owner(cluster), 'Create', '==', revision).then(...gone).commit();
  }

  forget(cluster: string): void {
    this.written.delete(cluster);
    // Another owner may write a record that fits meanwhile: unshared again if it comes back too large.
    this.unshared.delete(cluster);
  }

  /**
   * Runs writes one after another: a hand-over's final flush (or a retire) never overtakes a
   * write round in flight, whose records would otherwise land after it, older.
   */
  private serial(op: () => Promise<void>): Promise<void> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async write(batch: readonly Due[], now: number): Promise<void> {
    const [first, ...rest] = batch;
    if (first === undefined) return;
    const { client, keys } = this.o;
    let txn = client.if(keys.owner(first.cluster), 'Create', '==', first.revision);
    for (const d of rest) txn = txn.and(keys.owner(d.cluster), 'Create', '==', d.revision);
    const res = await txn.then(...batch.map((d) => client.put(d.withState ? keys.weight(d.cluster) : keys.servedWeight(d.cluster)).value(d.record))).commit();
    if (res.succeeded) {
      for (const d of batch) {
        this.unshared.delete(d.cluster);
        const stateAt = d.withState ? now : (this.written.get(d.cluster)?.stateAt ?? now);
        this.written.set(d.cluster, { overrides: d.overrides, body: d.body, stateAt });
      }
      return;
    }
    // Some owner key changed under us: write the others one by one; the lost ones are refused.
    if (batch.length > 1) for (const d of batch) await this.write([d], now);
    else this.o.log.warn({ cluster: first.cluster }, 'ha: weights not written: no longer the owner');
  }

  /** A record under `dir` (weights/ or served/): its overrides are served unless a newer record's are. */
  private received(dir: string, kv: IKeyValue): void {
    const cluster = nameUnder(dir, kv.key.toString());
    if (cluster !== undefined) this.recorded[dir === this.o.keys.weights ? 'weights' : 'served'].add(cluster);
    const record = parseServed(kv.value.toString());
    // Our own records: what we publish locally is at least as new.
    if (cluster === undefined || record === undefined || record.incarnation === this.incarnation) return;
    const revision = Number(kv.mod_revision);
    if ((this.seen.get(cluster) ?? -1) >= revision) return;
    this.seen.set(cluster, revision);
    this.serving.add(cluster);
    this.o.weights.setRemote(cluster, new Map(Object.entries(record.overrides)));
  }

  private now(): number {
    return (this.o.now ?? monotonicNow)();
  }
}

interface Written {
  readonly overrides: ReadonlyMap<string, EndpointOverride> | undefined;
  readonly body: string;
  /** When the state was last written (to weights/). */
  readonly stateAt: number;
}

interface Due extends Omit<Written, 'stateAt'> {
  readonly cluster: string;
  readonly revision: string;
  readonly withState: boolean;
  readonly record: string;
}

/** What a record costs of an etcd request: its value and its key (a cluster name is at most a few hundred bytes). */
function recordBytes(d: Due): number {
  return Buffer.byteLength(d.record) + Buffer.byteLength(d.cluster) + 64;
}

/** `due` cut into runs of at most `count` records and `bytes` bytes (a record alone may be larger: it is `fitting`'s to refuse). */
function batches(due: readonly Due[], count: number, bytes: number): Due[][] {
  const out: Due[][] = [];
  let run: Due[] = [];
  let size = 0;
  for (const d of due) {
    const b = recordBytes(d);
    if (run.length > 0 && (run.length >= count || size + b > bytes)) {
      out.push(run);
      run = [];
      size = 0;
    }
    run.push(d);
    size += b;
  }
  if (run.length > 0) out.push(run);
  return out;
}

/**
 * The state carried onto overrides served after it: each endpoint's weights (internal, published,
 * PID) scaled by how its served weight moved since the state's, so that the next owner's first
 * tick (anchored on the published weight, moving at most one step) starts from what Envoys are
 * served, not from up to `stateRefreshMs` earlier. Endpoints without both weights stay as they were.
 * A backlog drain's way back (cluster-export.ts ExportedDrain) is shortened by how far it moved
 * against its peers (a rescale of every weight leaves it as it was), and dropped once that is all
 * of it, within what the two integer weights tell apart: the drain ended after the state was
 * written, and it is served back already.
 */
export function reanchored(state: ExportedClusterState, served: Readonly<Record<string, EndpointOverride>>): ExportedClusterState {
  const weights: Record<string, number> = { ...state.weights };
  const endpoints: Record<string, ExportedEndpoint> = {};
  const moved = new Map<string, { then: number; now: number }>();
  let [thenSum, nowSum] = [0, 0];
  for (const [key, x] of Object.entries(state.endpoints)) {
    const now = served[key]?.weight;
    const then = state.weights[key];
    if (typeof x !== 'object' || x === null || now === undefined || then === undefined || !(now > 0 && then > 0 && Number.isFinite(now / then))) continue;
    moved.set(key, { then, now });
    thenSum += then;
    nowSum += now;
  }
  for (const [key, x] of Object.entries(state.endpoints)) {
    const m = moved.get(key);
    if (m === undefined) {
      endpoints[key] = x;
      continue;
    }
    const f = m.now / m.then;
    const peers = thenSum > m.then && nowSum > m.now ? (nowSum - m.now) / (thenSum - m.then) : 1;
    // Each integer weight is within half a unit of what it stands for.
    const rounding = 0.5 / m.then + 0.5 / m.now;
    endpoints[key] = drainMoved({ ...x, w: x.w * f, pub: x.pub * f, pidW: x.pidW === null ? null : x.pidW * f }, f / peers, rounding);
    weights[key] = m.now;
  }
  return { ...state, weights, endpoints };
}

/** `x` with its drain's factor back divided by `ratio` (how far it moved against its peers), or without it when no more than `within` is left. */
function drainMoved(x: ExportedEndpoint, ratio: number, within: number): ExportedEndpoint {
  const back = (x.drain as { back?: unknown } | null | undefined)?.back;
  if (typeof back !== 'number') return x;
  const { drain, ...rest } = x;
  return back / ratio > 1 + within ? { ...rest, drain: { ...drain, back: back / ratio } as ExportedDrain } : rest;
}

/**
 * The state cut down to what keeps the fleet's ejections (src/balancing/engine/cluster-export.ts),
 * for a record too large to carry the rest: with the published weights (the endpoints the exporter
 * knew, whose stale ejections the importer drops), then without them. None for a state without
 * ejections (an older replica's engine).
 */
function protectionsOf(state: ExportedClusterState): ExportedClusterState[] {
  if (state.ejections === undefined) return [];
  const { version, weights, at, ejections, departed } = state;
  const bare: ExportedClusterState = { version, weights: {}, endpoints: {}, at, ejections, departed };
  return [{ ...bare, weights }, bare];
}

/**
 * A record's JSON around the overrides' already serialized `body` (not parsed back and serialized
 * again): a WeightRecord with `state`, a ServedRecord without.
 */
function recordJson(owner: string, incarnation: string, at: number, body: string, state?: ExportedClusterState): string {
  const head = JSON.stringify({ owner, incarnation, at, ...(state === undefined ? {} : { state }) } satisfies Omit<ServedRecord, 'overrides'> & { state?: ExportedClusterState });
  return `${head.slice(0, -1)},"overrides":${body}}`;
}

/** The overrides part of either record; undefined when it is not what a replica writes. */
function parseServed(raw: string): ServedRecord | undefined {
  try {
    const r = JSON.parse(raw) as Partial<ServedRecord>;
    return typeof r.owner === 'string' && typeof r.overrides === 'object' && r.overrides !== null ? (r as ServedRecord) : undefined;
  } catch {
    return undefined;
  }
}

function parseRecord(raw: string): WeightRecord | undefined {
  const r = parseServed(raw) as Partial<WeightRecord> | undefined;
  return r !== undefined && typeof r.state === 'object' && r.state !== null ? (r as WeightRecord) : undefined;
}
