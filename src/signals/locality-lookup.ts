import { endpointOfLocality } from '../catalog/endpoint-localities.js';
import type { Endpoint, Locality } from '../catalog/types.js';

/**
 * An endpoint of a locality: its key and its position in the cluster, where its weight is read
 * when LRS asks (so a weight change leaves the rows as they are).
 */
export interface LocalityRow {
  readonly key: string;
  readonly index: number;
}

/** A cluster's locality rows by locality id (lrs-conversion.ts localityId): its layout. */
export type LocalityRows = ReadonlyMap<string, readonly LocalityRow[]>;

/** A locality row with its endpoint's locality. */
interface KeyedRow {
  readonly locality: Locality;
  readonly row: LocalityRow;
}

const NONE: readonly LocalityRow[] = [];

/**
 * One layout's rows found by a locality's name as a load report has it (pure). A gRPC client's
 * report names every endpoint of a split cluster as a locality of its own, once per entry: the
 * name is looked up by its parts, never turned into an id (JSON.stringify was the largest cost of
 * such an entry), and its endpoint by key, never by a scan of its zone (5,000 endpoints in one
 * zone: 0.7 s of one report, 20,000: 10 s). Both indexes are built on first use.
 */
export class LocalityLookup {
  /** region → zone → sub-zone → rows. */
  private byName: Map<string, Map<string, Map<string, readonly LocalityRow[]>>> | undefined;
  private byKey: Map<string, KeyedRow> | undefined;

  constructor(private readonly rows: LocalityRows) {}

  /**
   * The rows of the locality named; failing that, the row of the one endpoint a gRPC client's
   * locality stands for (its sub-zone written by endpointSubZone) when that endpoint is in the
   * real locality named; none for any other locality. `endpoints`: the cluster's, whose positions
   * the rows hold (passed, not kept: a layout outlives the cluster objects of weight changes).
   */
  find(locality: Locality, endpoints: readonly Endpoint[]): readonly LocalityRow[] {
    const exact = this.names(endpoints).get(locality.region)?.get(locality.zone)?.get(locality.subZone);
    if (exact !== undefined) return exact;
    const named = endpointOfLocality(locality);
    if (named === undefined) return NONE;
    const hit = this.keys(endpoints).get(named.key);
    return hit !== undefined && sameLocality(hit.locality, named.locality) ? [hit.row] : NONE;
  }

  private names(endpoints: readonly Endpoint[]): Map<string, Map<string, Map<string, readonly LocalityRow[]>>> {
    if (this.byName !== undefined) return this.byName;
    const index = new Map<string, Map<string, Map<string, readonly LocalityRow[]>>>();
    for (const rows of this.rows.values()) {
      const l = localityOf(endpoints, rows[0]);
      if (l === undefined) continue;
      let zones = index.get(l.region);
      if (zones === undefined) index.set(l.region, (zones = new Map()));
      let subZones = zones.get(l.zone);
      if (subZones === undefined) zones.set(l.zone, (subZones = new Map()));
      subZones.set(l.subZone, rows);
    }
    return (this.byName = index);
  }

  private keys(endpoints: readonly Endpoint[]): Map<string, KeyedRow> {
    if (this.byKey !== undefined) return this.byKey;
    const index = new Map<string, KeyedRow>();
    for (const rows of this.rows.values()) {
      for (const row of rows) {
        const locality = localityOf(endpoints, row);
        if (locality !== undefined) index.set(row.key, { locality, row });
      }
    }
    return (this.byKey = index);
  }
}

function localityOf(endpoints: readonly Endpoint[], row: LocalityRow | undefined): Locality | undefined {
  return row === undefined ? undefined : endpoints[row.index]?.locality;
}

export function sameLocality(a: Locality, b: Locality): boolean {
  return a === b || (a.region === b.region && a.zone === b.zone && a.subZone === b.subZone);
}
