/**
 * The `endpoints` table's rows and how they become domain endpoints and store records (SQLite),
 * shared by the store's synchronous writes and its sliced big-cluster write (sliced-write.ts).
 */
import type { Cluster, Endpoint, HealthStatus } from '../types.js';
import { nextOperatorState, servedHealth } from './ownership.js';
import type { ClusterSpec, EndpointRecord, EndpointSpec, OperatorState, Owner } from './records.js';

export interface EndpointRow {
  readonly cluster: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly priority: number;
  readonly region: string;
  readonly zone: string;
  readonly sub_zone: string;
  readonly health: HealthStatus;
  readonly state: OperatorState;
  readonly owner: Owner;
  readonly revision: number;
  readonly updated_at: string;
}

/** What an upsert writes, apart from revision and updated_at. */
export type EndpointColumns = Omit<EndpointRow, 'revision' | 'updated_at'>;

/** The columns `e` gives an endpoint of `cluster` (the operator state kept unless `e` sets one). */
export function endpointColumns(cluster: string, e: EndpointSpec, owner: Owner, old: EndpointRow | undefined): EndpointColumns {
  return {
    cluster,
    address: e.address,
    port: e.port,
    weight: e.weight,
    priority: e.priority,
    region: e.locality.region,
    zone: e.locality.zone,
    sub_zone: e.locality.subZone,
    health: e.health,
    state: nextOperatorState(e.state, old?.state),
    owner,
  };
}

/** Whether writing `next` over `old` would change nothing (so no revision, no audit). */
export function sameColumns(old: EndpointRow | undefined, next: EndpointColumns): old is EndpointRow {
  return (
    old !== undefined &&
    old.weight === next.weight &&
    old.priority === next.priority &&
    old.region === next.region &&
    old.zone === next.zone &&
    old.sub_zone === next.sub_zone &&
    old.health === next.health &&
    old.state === next.state &&
    old.owner === next.owner
  );
}

/** A cluster's endpoint count (an index count, no rows read). */
export const COUNT_ENDPOINTS = 'SELECT count(*) AS n FROM endpoints WHERE cluster = ?';

export const UPSERT_ENDPOINT = `INSERT INTO endpoints (cluster, address, port, weight, priority, region, zone, sub_zone, health, state, owner, revision, updated_at)
  VALUES (@cluster, @address, @port, @weight, @priority, @region, @zone, @sub_zone, @health, @state, @owner, @revision, @updated_at)
  ON CONFLICT (cluster, address, port) DO UPDATE SET
    weight = excluded.weight, priority = excluded.priority, region = excluded.region, zone = excluded.zone,
    sub_zone = excluded.sub_zone, health = excluded.health, state = excluded.state, owner = excluded.owner,
    revision = excluded.revision, updated_at = excluded.updated_at`;

export function toEndpoint(row: EndpointRow, health: HealthStatus): Endpoint {
  return {
    address: row.address,
    port: row.port,
    locality: { region: row.region, zone: row.zone, subZone: row.sub_zone },
    priority: row.priority,
    weight: row.weight,
    health,
  };
}

export function toEndpointRecord(row: EndpointRow): EndpointRecord {
  return {
    cluster: row.cluster,
    ...toEndpoint(row, row.health),
    state: row.state,
    owner: row.owner,
    revision: row.revision,
    updatedAt: row.updated_at,
  };
}

export function parseClusterSpec(row: { readonly name: string; readonly spec: string }): ClusterSpec {
  return { name: row.name, ...(JSON.parse(row.spec) as Omit<ClusterSpec, 'name'>) };
}

/** Operator state applied: draining endpoints are served DRAINING, disabled ones left out (see Store.catalog). */
export function toCluster(row: { readonly name: string; readonly spec: string }, endpoints: readonly EndpointRow[]): Cluster {
  const served: Endpoint[] = [];
  for (const e of endpoints) {
    const health = servedHealth(e.state, e.health);
    if (health !== undefined) served.push(toEndpoint(e, health));
  }
  return { ...parseClusterSpec(row), endpoints: served };
}
