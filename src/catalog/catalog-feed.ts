import type { Component } from '../runtime/lifecycle.js';
import type { Catalog } from './types.js';

/** Where the desired state comes from: the durable store (config file and API writes). */
export interface CatalogOrigin {
  catalog(): Catalog;
  onChange(listener: () => void): () => void;
}

export interface CatalogConsumer {
  setCatalog(catalog: Catalog): void;
}

/**
 * The catalog every later stage sees: the store's desired state with contributions that do not
 * live in the store layered on top (Kubernetes discovery), pushed to each consumer, in order, on
 * every change of either. Starting pushes the current catalog once.
 */
export class CatalogFeed implements Component {
  readonly name = 'catalog';
  private overlay: (catalog: Catalog) => Catalog = (c) => c;
  private unsubscribe: (() => void) | undefined;

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
  }

  /** Replaces the layer on top of the store's catalog and pushes the result. */
  setOverlay(overlay: (catalog: Catalog) => Catalog): void {
    this.overlay = overlay;
    if (this.unsubscribe) this.refresh();
  }

  private refresh(): void {
    const catalog = this.overlay(this.origin.catalog());
    for (const c of this.consumers) c.setCatalog(catalog);
  }
}
