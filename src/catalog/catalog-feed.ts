import { nextTurn } from '../runtime/next-turn.js';
import type { Component } from '../runtime/lifecycle.js';
import { changedClusters } from './changed-clusters.js';
import type { Catalog } from './types.js';

/** Where the desired state comes from: the durable store (config file and API writes). */
export interface CatalogOrigin {
  catalog(): Catalog;
  onChange(listener: () => void): () => void;
}

export interface CatalogConsumer {
  setCatalog(catalog: Catalog): void;
  /**
   * setCatalog in steps, for a big change (one per turn of the event loop): the last step
   * applies the catalog, the steps before it change nothing (the feed drops them for a newer one).
   */
  setCatalogSteps?(catalog: Catalog): Generator<void, void, void>;
}

/** A change whose new or changed clusters hold more endpoints than this together is big. */
export const BIG_CHANGE_ENDPOINTS = 1_000;

/**
 * The catalog every later stage sees: the store's desired state with contributions that do not
 * live in the store layered on top (Kubernetes discovery), pushed to each consumer, in order, on
 * every change of either. Starting pushes the current catalog once.
 *
 * A big change (a cluster of 20k endpoints written) is pushed one consumer per turn of the event
 * loop, from the turn after the change: each consumer's share of it (the weight engine's, the signals', the publisher's) then
 * holds other requests up alone, not all of them in one go; a consumer with `setCatalogSteps`
 * (the weight engine's) takes it in steps of its own, one per turn. A change arriving meanwhile
 * restarts the round with the newer catalog, from the first consumer (steps in progress are
 * dropped: they change nothing before their last); small changes are pushed at once.
 */
export class CatalogFeed implements Component {
  readonly name = 'catalog';
  private overlay: (catalog: Catalog) => Catalog = (c) => c;
  private unsubscribe: (() => void) | undefined;
  /** The catalog last pushed (or being pushed). */
  private last: Catalog | undefined;
  /** While a big change is pushed in turns: the newer catalog to push next, if any. */
  private inTurns: { next: Catalog | undefined } | undefined;
  /** Waiting for `delivered()`. */
  private deliveredWaiters: (() => void)[] = [];

  constructor(
    private readonly origin: CatalogOrigin,
    private readonly consumers: readonly CatalogConsumer[],
  ) {}

  start(): void {
    this.unsubscribe = this.origin.onChange(() => this.refresh());
    this.refresh();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.inTurns = undefined;
    this.settleDelivered();
  }

  /** Resolves once the latest catalog has reached every consumer (at once unless a big change is being pushed in turns). */
  delivered(): Promise<void> {
    if (!this.inTurns) return Promise.resolve();
    return new Promise((resolve) => this.deliveredWaiters.push(resolve));
  }

  private settleDelivered(): void {
    for (const resolve of this.deliveredWaiters.splice(0)) resolve();
  }

  /** Replaces the layer on top of the store's catalog and pushes the result. */
  setOverlay(overlay: (catalog: Catalog) => Catalog): void {
    this.overlay = overlay;
    if (this.unsubscribe) this.refresh();
  }

  private refresh(): void {
    const catalog = this.overlay(this.origin.catalog());
    const previous = this.last;
    this.last = catalog;
    if (this.inTurns) {
      this.inTurns.next = catalog;
      return;
    }
    if (previous === undefined || !isBig(previous, catalog)) {
      for (const c of this.consumers) c.setCatalog(catalog);
      return;
    }
    void this.pushInTurns(catalog);
  }

  /** Runs a consumer's `steps` a step per turn; false (the steps dropped) once a newer catalog came or the feed stopped. */
  private async stepThrough(steps: Generator<void, void, void>, round: { next: Catalog | undefined }): Promise<boolean> {
    for (let step = steps.next(); step.done !== true; step = steps.next()) {
      await nextTurn();
      if (round.next || this.inTurns !== round) {
        steps.return();
        return false;
      }
    }
    return true;
  }

  private async pushInTurns(first: Catalog): Promise<void> {
    const round = { next: undefined as Catalog | undefined };
    this.inTurns = round;
    let catalog: Catalog | undefined = first;
    while (catalog && this.inTurns === round) {
      round.next = undefined;
      for (const c of this.consumers) {
        // A turn first too: the change arrives at the end of its write's task (a 20k-endpoint
        // commit, its read-back and audit record), which should not carry a consumer's share as well.
        await nextTurn();
        if (round.next || this.inTurns !== round) break;
        if (!c.setCatalogSteps) c.setCatalog(catalog);
        else if (!(await this.stepThrough(c.setCatalogSteps(catalog), round))) break;
      }
      catalog = round.next;
    }
    if (this.inTurns !== round) return;
    this.inTurns = undefined;
    this.settleDelivered();
  }
}

/** Whether the clusters of `next` that are not the same objects as in `previous` hold more than BIG_CHANGE_ENDPOINTS endpoints. */
function isBig(previous: Catalog, next: Catalog): boolean {
  // The stages after the feed ask the same of the same two lists (kept once).
  const { changed } = changedClusters(previous.clusters, next.clusters);
  let endpoints = 0;
  for (const c of changed) {
    endpoints += c.endpoints.length;
    if (endpoints > BIG_CHANGE_ENDPOINTS) return true;
  }
  return false;
}
