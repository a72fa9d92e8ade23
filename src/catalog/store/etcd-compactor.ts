import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Component } from '../../runtime/lifecycle.js';
import { ETCD_NO_SPACE } from './errors.js';

/**
 * Compacts etcd's history every `everyMs`, keeping the last interval of it, as kube-apiserver
 * does for its etcd. etcd keeps every revision of every key until compacted, and fulcrum on etcd
 * rewrites weight records and signals every tick: at 100 clusters × 20 endpoints with moving
 * weights etcd's database grew ~85 MiB a minute (bench/ha-etcd-writes.ts), so an etcd without
 * `--auto-compaction-retention` reached its default 2 GiB quota in under half an hour and then
 * refused every write.
 *
 * Replicas take turns through one key: each interval, the replica whose transaction still finds
 * the key at the version it last saw bumps it and compacts to the revision it noted one interval
 * earlier; the others only learn the new version. So one compaction per interval for the fleet,
 * and at least one interval of history left for watches that resume after a short cut.
 */
export interface EtcdCompactorOptions {
  readonly client: Etcd3;
  /** The key the replicas take turns through, e.g. `<prefix>/compaction`. */
  readonly key: string;
  readonly everyMs: number;
  readonly log: Logger;
}

export class EtcdCompactor implements Component {
  readonly name = 'etcd-compactor';
  private timer: NodeJS.Timeout | undefined;
  /** The key's version as last seen, and the revision noted then (0: none yet). */
  private version = 0;
  private revision = 0;
  private running: Promise<unknown> | undefined;
  private failing = false;
  /** Out of space was logged; not again until a turn finds space. */
  private noSpace = false;

  constructor(private readonly o: EtcdCompactorOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.turn().finally(() => {
        this.running = undefined;
      });
    }, this.o.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One interval's turn; resolves to the revision compacted to, if this replica compacted. */
  async turn(): Promise<number | undefined> {
    try {
      const compacted = await this.take();
      if (this.failing) this.o.log.info('etcd history compacted again');
      this.failing = false;
      return compacted;
    } catch (err) {
      if (!this.failing) this.o.log.warn({ err: (err as Error).message }, this.advice(err as Error));
      this.failing = true;
      return undefined;
    }
  }

  /**
   * etcd's quota is full (NOSPACE): it refuses the turn's put but still compacts. Compacting all of
   * its history is what it needs first; freeing the space also takes `etcdctl defrag` and
   * `etcdctl alarm disarm`, which an operator runs.
   */
  private async outOfSpace(): Promise<number> {
    const latest = Number((await this.o.client.get(this.o.key).exec()).header.revision);
    await this.compact(latest);
    if (!this.noSpace) this.o.log.error({ revision: latest }, 'etcd is out of space (NOSPACE): compacted its history; now defragment its members (etcdctl defrag) and clear the alarm (etcdctl alarm disarm)');
    this.noSpace = true;
    return latest;
  }

  private advice(err: Error): string {
    const tail =
      'without compaction etcd keeps every revision of every key and refuses all writes once its space quota (2 GiB by default) is full: ' +
      'run etcd with --auto-compaction-retention (e.g. 5m), and set store.etcd.compactEveryMs: 0 to leave it to etcd';
    // With etcd authentication on, compaction needs the root role; fulcrum's user has its prefix only.
    if (/permission denied/i.test(err.message)) return `etcd refused to compact its history to this user (compaction needs etcd's root role); ${tail}`;
    return `cannot compact etcd history, retrying every interval; ${tail}`;
  }

  private async take(): Promise<number | undefined> {
    const { client, key } = this.o;
    let res: Awaited<ReturnType<ReturnType<Etcd3['if']>['commit']>>;
    try {
      res = await client.if(key, 'Version', '==', this.version).then(client.put(key).value('')).else(client.get(key)).commit();
    } catch (err) {
      if (ETCD_NO_SPACE.test((err as Error).message)) return this.outOfSpace();
      throw err;
    }
    const now = Number(res.header.revision);
    this.noSpace = false;
    if (!res.succeeded) {
      // Another replica's turn: start over from what it left.
      const kv = res.responses[0]?.response_range?.kvs[0];
      this.version = Number(kv?.version ?? 0);
      this.revision = now;
      return undefined;
    }
    this.version++;
    const target = this.revision;
    this.revision = now;
    if (target === 0) return undefined;
    return (await this.compact(target)) ? target : undefined;
  }

  /** Compacts etcd's history up to `revision`; false when it was compacted further already. */
  private async compact(revision: number): Promise<boolean> {
    try {
      await this.o.client.kv.compact({ revision: String(revision) });
      return true;
    } catch (err) {
      // Compacted further already (etcd's own auto-compaction, another fulcrum on this etcd): fine.
      if (/required revision has been compacted/.test((err as Error).message)) return false;
      throw err;
    }
  }
}
