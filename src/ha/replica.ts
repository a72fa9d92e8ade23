import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Catalog } from '../catalog/types.js';
import type { Component } from '../runtime/lifecycle.js';
import { haKeys } from './keys.js';
import { Membership } from './membership.js';
import { Ownership } from './ownership.js';
import { rendezvousOwner } from './rendezvous.js';
import { monotonicNow } from '../runtime/monotonic-clock.js';
import { SignalShare, type SharedLrs, type SharedSignals } from './signal-share.js';
import { WeightShare, type SharedWeights } from './weight-share.js';

/** Default lease TTL: a dead replica's clusters move within 3 s (+ one watch round trip), under issue 9's 5 s. */
export const DEFAULT_LEASE_TTL_SECONDS = 3;
export const DEFAULT_STATE_REFRESH_MS = 5_000;
/** How often ownership is recomputed even without a watch event (a safety net, not the mechanism). */
const RECONCILE_MS = 1_000;
/** How long a removed cluster's records stay without an owner before they are deleted. */
const ORPHAN_GRACE_MS = 10_000;

export interface HaReplicaOptions {
  /** A connected etcd client (the store's); not closed by the replica. */
  readonly client: Etcd3;
  /** The key prefix shared by every replica of one fleet (e.g. the store's `/fulcrum`). */
  readonly prefix: string;
  /** Unique among the replicas: the pod name, or FULCRUM_REPLICA_ID, or the hostname. */
  readonly replicaId: string;
  readonly leaseTtlSeconds?: number;
  /** How often owned weights and shared signals are written (the engine tick). */
  readonly tickMs: number;
  readonly stateRefreshMs?: number;
  /** The adaptive weights: ticked only for owned clusters; the others served from their owner. */
  readonly weights: SharedWeights & { setOwnership(owns: (cluster: string) => boolean): void };
  readonly signals: SharedSignals;
  /** LRS sums, exchanged so that each cluster's owner steers on the whole fleet's load reports. */
  readonly lrs?: SharedLrs;
  readonly log: Logger;
}

export interface HaStatus {
  readonly replicaId: string;
  readonly fenced: boolean;
  readonly live: readonly string[];
  readonly owned: readonly string[];
}

/**
 * One fulcrum replica among several on one etcd (issue 9): registration under a lease
 * (membership.ts), one owner per cluster (ownership.ts), published weights and controller state
 * through etcd (weight-share.ts), and signals forwarded to the owner (signal-share.ts).
 * A catalog consumer (it needs the cluster names) and a component: started after the catalog
 * and before the weight loop; stopping hands every owned cluster over and revokes the lease.
 */
export class HaReplica implements Component {
  readonly name = 'ha';
  private readonly membership: Membership;
  private readonly ownership: Ownership;
  private readonly weightShare: WeightShare;
  private readonly signalShare: SignalShare;
  private timer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private flushing = false;
  private clusters: readonly string[] = [];
  private readonly ttlMs: number;
  /** Clusters whose records are orphaned, since when (swept after ORPHAN_GRACE_MS). */
  private orphaned = new Map<string, number>();
  /** Whether the catalog holds every source's clusters (sweepAfter). */
  private catalogComplete = true;

  constructor(private readonly o: HaReplicaOptions) {
    if (o.replicaId === '' || o.replicaId.includes('/')) throw new RangeError(`ha.replicaId must be non-empty and contain no "/", got "${o.replicaId}"`);
    const ttl = o.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 2) throw new RangeError(`ha.leaseTtlSeconds must be an integer >= 2, got ${ttl}`);
    this.ttlMs = ttl * 1000;
    const keys = haKeys(o.prefix);
    const common = { client: o.client, keys, replicaId: o.replicaId, log: o.log };
    this.membership = new Membership({ ...common, ttlSeconds: ttl, onChange: () => this.ownership.reconcile() });
    this.weightShare = new WeightShare({ ...common, weights: o.weights, stateRefreshMs: o.stateRefreshMs ?? DEFAULT_STATE_REFRESH_MS });
    this.ownership = new Ownership({
      ...common,
      members: this.membership,
      hooks: {
        acquired: (cluster) => this.weightShare.acquired(cluster),
        releasing: (cluster, revision, gone) =>
          (gone ? this.weightShare.retire(cluster, revision) : this.weightShare.flush(new Map([[cluster, revision]]), true)).finally(() => this.weightShare.forget(cluster)),
      },
    });
    this.signalShare = new SignalShare({ ...common, signals: o.signals, ...(o.lrs ? { lrs: o.lrs } : {}), owns: (c) => this.ownership.owns(c) });
  }

  setCatalog(catalog: Catalog): void {
    this.clusters = catalog.clusters.map((c) => c.name);
    this.ownership.setClusters(this.clusters);
  }

  async start(): Promise<void> {
    this.o.weights.setOwnership((c) => this.ownership.owns(c));
    await this.weightShare.start();
    await this.ownership.start();
    await this.signalShare.start();
    await this.membership.start();
    this.ownership.setClusters(this.clusters);
    this.timer = setInterval(() => void this.flush(), this.o.tickMs);
    this.timer.unref();
    this.reconcileTimer = setInterval(() => {
      this.ownership.reconcile();
      this.sweepOrphans();
    }, RECONCILE_MS);
    this.reconcileTimer.unref();
  }

  /**
   * Hands the owned clusters over (final state written), then leaves: the lease is revoked.
   * Bounded: with etcd unreachable it gives up after the lease TTL (the lease expires anyway).
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.reconcileTimer);
    this.timer = this.reconcileTimer = undefined;
    const limit = this.ttlMs;
    await this.signalShare.stop();
    await this.bounded('hand-over', this.ownership.stop(), limit);
    await this.weightShare.stop();
    await this.bounded('lease revoke', this.membership.stop(), limit);
  }

  private async bounded(what: string, work: Promise<void>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
    try {
      const outcome = await Promise.race([work.then(() => 'done' as const), timeout]);
      if (outcome === 'timeout') this.o.log.warn({ ms }, `ha: ${what} at stop did not finish; the lease expires on its own`);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, `ha: ${what} at stop failed`);
    } finally {
      clearTimeout(timer);
    }
  }

  status(): HaStatus {
    return {
      replicaId: this.o.replicaId,
      fenced: this.membership.fenced(),
      live: [...this.membership.live()].sort(),
      owned: this.ownership.owned().sort(),
    };
  }

  /** Why this replica is not ready, if it is not (readiness: cut off from etcd). */
  notReady(): string | undefined {
    return this.membership.fenced() ? 'cut off from etcd (lease not renewed): serving the last weights, not ticking' : undefined;
  }

  /** Who holds a cluster, as this replica last saw it. */
  ownerOf(cluster: string): string | undefined {
    return this.ownership.holderOf(cluster);
  }

  /**
   * Sweeps no orphan before `complete` settles. Discovered clusters are not stored: until
   * discovery's first view (the API server away at a restart, or a large first list) they are
   * missing from the catalog, and their records, the state a restart imports, are not orphans.
   */
  sweepAfter(complete: Promise<void>): void {
    this.catalogComplete = false;
    // Settled either way, as HeldAnswers takes it (a rejection left unhandled would end the process).
    const done = (): void => {
      this.catalogComplete = true;
    };
    void complete.then(done, done);
  }

  /**
   * Records of clusters that left the catalog while no replica held them (their owner died, so
   * none retired them) would stay in etcd for good, and a cluster created later under the name
   * would import their state. The replica that would own such a cluster deletes them once they
   * have been orphaned for ORPHAN_GRACE_MS (a catalog behind another replica's, or discovery not
   * synced yet after a start, is not taken for a deletion).
   */
  private sweepOrphans(): void {
    const live = this.membership.live();
    if (!this.catalogComplete || this.membership.fenced() || !live.has(this.o.replicaId)) return;
    const catalog = new Set(this.clusters);
    const now = monotonicNow();
    const orphaned = new Map<string, number>();
    for (const c of this.weightShare.recordedClusters()) {
      if (catalog.has(c) || this.ownership.holderOf(c) !== undefined || rendezvousOwner(c, live) !== this.o.replicaId) continue;
      const since = this.orphaned.get(c) ?? now;
      orphaned.set(c, since);
      if (now - since < ORPHAN_GRACE_MS) continue;
      this.weightShare.sweep(c).catch((err: unknown) => this.o.log.warn({ cluster: c, err: (err as Error).message }, 'ha: records of a removed cluster not deleted; retried'));
    }
    this.orphaned = orphaned;
  }

  /** One write round: owned clusters' weights, then this replica's signal batch. */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const owned = new Map<string, string>();
      for (const c of this.ownership.owned()) {
        const rev = this.ownership.revision(c);
        if (rev !== undefined) owned.set(c, rev);
      }
      await this.weightShare.flush(owned);
      const lease = this.membership.currentLease();
      if (lease !== undefined) await this.signalShare.flush(lease);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'ha: write round failed');
    } finally {
      this.flushing = false;
    }
  }
}
