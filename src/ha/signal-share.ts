import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from 'pino';
import { SAMPLE_FIELDS, type Sample, type SignalListener } from '../signals/signal-store.js';
import { PrefixWatch } from '../catalog/store/etcd-prefix-watch.js';
import { nameUnder, type HaKeys } from './keys.js';

/** What the signal share needs of the signal store (src/signals/signal-store.ts). */
export interface SharedSignals {
  subscribe(listener: SignalListener): () => void;
  record(cluster: string, key: string, sample: Sample): boolean;
  /** The store's clock: samples from other replicas are stamped with their arrival. */
  now(): number;
}

/** What the signal share needs of LRS (src/signals/lrs-service.ts): this replica's own sums out, the others' in. */
export interface SharedLrs {
  partials(include: (cluster: string) => boolean): LrsPartial[];
  applyPartial(replica: string, partial: LrsPartial): boolean;
  dropReplica(replica: string): void;
}

/** One replica's LRS sums of one endpoint (opaque here: only an LRS aggregator reads them). */
export interface LrsPartial {
  readonly cluster: string;
  readonly key: string;
  readonly sums: readonly number[];
}

/** `<prefix>/signals/<replica>`: one replica's newest per-endpoint values since its last batch. */
export interface SignalBatch {
  readonly replica: string;
  readonly at: number;
  /** Samples from reports (agents), newest value per field: whole values, wherever they landed. */
  readonly clusters: Readonly<Record<string, Readonly<Record<string, Sample>>>>;
  /** Its own proxies' LRS sums per endpoint: parts of the fleet's, which the owner adds up. */
  readonly lrs?: Readonly<Record<string, Readonly<Record<string, readonly number[]>>>>;
}

export interface SignalShareOptions {
  readonly client: Etcd3;
  readonly keys: HaKeys;
  readonly replicaId: string;
  readonly signals: SharedSignals;
  /** Whether this replica owns (ticks) the cluster now. */
  readonly owns: (cluster: string) => boolean;
  /**
   * LRS sums. Without it, LRS samples are forwarded as any other: each replica's then holds only
   * its own proxies' part of an endpoint's traffic, and the owner steered on whichever part came last.
   */
  readonly lrs?: SharedLrs;
  readonly log: Logger;
  readonly now?: () => number;
}

type Pending = Map<string, Map<string, { -readonly [K in keyof Sample]: Sample[K] }>>;

/**
 * Signals reach a cluster's owner wherever they land. Samples from reports for clusters this
 * replica does not own are folded per endpoint (newest value per field) and written once per tick
 * as one batch under `<prefix>/signals/<replica>`, under the replica's lease and only when new
 * samples arrived. Each replica watches the batches of the others and records the samples of the
 * clusters it owns into its own signal store, whence they reach its engine like local ones, at
 * most a tick (plus an etcd round trip) later than if they had landed on the owner.
 *
 * Load reports (LRS) are different: each proxy reports its own share of an endpoint's traffic to
 * the replica it is connected to, so each replica's combined sample is part of the fleet's. The
 * batch carries this replica's own sums instead, and the owner adds them to its own (`lrs`).
 * Probe results are not shared: every replica probes every endpoint itself.
 */
export class SignalShare {
  private pending: Pending = new Map();
  private unsubscribe: (() => void) | undefined;
  private watch: PrefixWatch | undefined;
  /** Set while recording another replica's samples, so they are not shared back. */
  private applying = false;

  constructor(private readonly o: SignalShareOptions) {}

  async start(): Promise<void> {
    this.unsubscribe = this.o.signals.subscribe((e) => {
      if (e.kind !== 'sample' || this.applying || this.o.owns(e.cluster)) return;
      // LRS samples go as sums (flush): as a sample, a part would read as the whole.
      if (e.sample.source === 'lrs' && this.o.lrs !== undefined) return;
      this.fold(e.cluster, e.key, e.sample);
    });
    // From the present on, also after a lost watch: signals are soft state, newer ones come every tick.
    this.watch = new PrefixWatch({
      client: this.o.client,
      prefix: this.o.keys.signals,
      put: (kv) => this.received(kv),
      // A replica's key goes with its lease: it stopped, and its proxies' sums with it.
      deleted: (kv) => this.departed(kv),
      log: this.o.log,
      what: 'ha: signals watch',
    });
    await this.watch.start();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.watch?.stop();
    this.watch = undefined;
  }

  /** Writes the batch gathered since the last flush, if any, under `lease`; returns the endpoints written. */
  async flush(lease: string): Promise<number> {
    const partials = this.o.lrs?.partials((c) => !this.o.owns(c)) ?? [];
    if (this.pending.size === 0 && partials.length === 0) return 0;
    const batch = this.pending;
    this.pending = new Map();
    const at = (this.o.now ?? Date.now)();
    // Lost if a write fails: signals are soft state, and the next tick brings newer ones.
    for (const part of parts(this.o.replicaId, at, batch, partials)) {
      await this.o.client.put(this.o.keys.signal(this.o.replicaId)).value(part).lease(lease).exec();
    }
    return partials.length + [...batch.values()].reduce((n, eps) => n + eps.size, 0);
  }

  private fold(cluster: string, key: string, sample: Sample): void {
    let eps = this.pending.get(cluster);
    if (eps === undefined) this.pending.set(cluster, (eps = new Map()));
    const into = eps.get(key) ?? { at: sample.at };
    // A field the batch lacks is taken from an older sample too: another source's newer samples
    // of other fields must not keep an agent's latency from the owner (as in the signal store).
    for (const f of SAMPLE_FIELDS) if (sample[f] !== undefined && (sample.at >= into.at || into[f] === undefined)) into[f] = sample[f];
    into.at = Math.max(into.at, sample.at);
    eps.set(key, into);
  }

  private received(kv: IKeyValue): void {
    const from = nameUnder(this.o.keys.signals, kv.key.toString());
    if (from === undefined || from === this.o.replicaId) return;
    const batch = parseBatch(kv.value.toString());
    if (batch === undefined) return;
    // Stamped on arrival, like a report reaching the owner a tick late: stamped with the sender's
    // time, a CPU report would lose to an LRS sample the owner received meanwhile (the engine
    // drops samples older than the newest) and another host's clock would skew freshness.
    const at = this.o.signals.now();
    this.applying = true;
    try {
      for (const [cluster, eps] of Object.entries(batch.clusters)) {
        if (!this.o.owns(cluster)) continue;
        for (const [key, sample] of Object.entries(eps)) this.o.signals.record(cluster, key, { ...sample, at });
      }
      this.receivedSums(from, batch.lrs);
    } finally {
      this.applying = false;
    }
  }

  private departed(kv: IKeyValue): void {
    const from = nameUnder(this.o.keys.signals, kv.key.toString());
    if (from !== undefined && from !== this.o.replicaId) this.o.lrs?.dropReplica(from);
  }

  /** Another replica's LRS sums for the clusters this one owns (anything malformed is skipped: the aggregator checks each). */
  private receivedSums(from: string, lrs: unknown): void {
    if (this.o.lrs === undefined || !isRecord(lrs)) return;
    for (const [cluster, eps] of Object.entries(lrs)) {
      if (!this.o.owns(cluster) || !isRecord(eps)) continue;
      for (const [key, sums] of Object.entries(eps)) if (Array.isArray(sums)) this.o.lrs.applyPartial(from, { cluster, key, sums });
    }
  }
}

/**
 * Bytes of one batch put: etcd refuses a request over 1.5 MiB by default (--max-request-bytes),
 * which a tick's reports for ~15,000 endpoints of other owners pass (~100 B each). A larger tick
 * is written as several puts of the key, one after another: the owners read each as it comes
 * (a watch delivers every revision), and an endpoint's values are whole in one of them.
 */
const PART_BYTES = 1024 * 1024;

/** One tick's samples and LRS sums as SignalBatch JSON texts of at most about PART_BYTES each. */
function parts(replica: string, at: number, samples: Pending, partials: readonly LrsPartial[]): string[] {
  const out: string[] = [];
  let clusters: Record<string, Record<string, Sample>> = {};
  let lrs: Record<string, Record<string, readonly number[]>> = {};
  let bytes = 0;
  const close = (): void => {
    const withLrs = Object.keys(lrs).length > 0;
    out.push(JSON.stringify({ replica, at, clusters, ...(withLrs ? { lrs } : {}) } satisfies SignalBatch));
    clusters = {};
    lrs = {};
    bytes = 0;
  };
  /** Starts another part first if `size` more bytes would not fit in this one. */
  const room = (size: number): void => {
    if (bytes > 0 && bytes + size > PART_BYTES) close();
    bytes += size;
  };
  for (const [cluster, eps] of samples) {
    for (const [key, sample] of eps) {
      room(entryBytes(cluster, key, sample));
      (clusters[cluster] ??= {})[key] = sample;
    }
  }
  for (const p of partials) {
    room(entryBytes(p.cluster, p.key, p.sums));
    (lrs[p.cluster] ??= {})[p.key] = p.sums;
  }
  if (bytes > 0 || out.length === 0) close();
  return out;
}

/** About what an endpoint's entry adds to a batch's JSON (its cluster's name counted each time: an upper bound). */
function entryBytes(cluster: string, key: string, value: object): number {
  return Buffer.byteLength(cluster) + Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(value)) + 16;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseBatch(raw: string): SignalBatch | undefined {
  try {
    const b = JSON.parse(raw) as Partial<SignalBatch>;
    return typeof b.clusters === 'object' && b.clusters !== null ? (b as SignalBatch) : undefined;
  } catch {
    return undefined;
  }
}
