/**
 * Consistent-hash ring with virtual nodes.
 *
 * Each node is placed at `virtualNodes` points (hash of "node#i"); a key belongs to the
 * first point at or after its own hash, wrapping around. Adding or removing a node only
 * moves the keys whose nearest point changed, about 1/N of them, which is the property
 * session affinity and caches rely on. 160 points per node (ketama's choice) keeps each
 * node's share within roughly ±8% (1/sqrt(160)) of fair.
 *
 * Points live in a sorted Uint32Array searched by bisection, so a lookup costs one hash
 * and O(log points). Adding sorts only the new points and merges them in; removing
 * filters; neither re-sorts the whole ring.
 */
import { HASH_FUNCTIONS, type HashFunction, type HashName } from './hash-functions.js';

export interface HashRingOptions {
  /** Points per node unless `add` says otherwise. Default 160. */
  readonly virtualNodes?: number;
  /** A named hash or any string → uint32 function. Default 'murmur3'. */
  readonly hash?: HashName | HashFunction;
}

export const DEFAULT_VIRTUAL_NODES = 160;

export class HashRing {
  private readonly hash: HashFunction;
  private readonly defaultVirtualNodes: number;
  private readonly members = new Map<string, number>();
  private positions = new Uint32Array(0);
  private owners: string[] = [];

  constructor(nodes: Iterable<string> = [], options: HashRingOptions = {}) {
    const { virtualNodes = DEFAULT_VIRTUAL_NODES, hash = 'murmur3' } = options;
    assertVirtualNodes(virtualNodes);
    this.defaultVirtualNodes = virtualNodes;
    this.hash = typeof hash === 'function' ? hash : HASH_FUNCTIONS[hash];
    this.addAll(nodes);
  }

  /** Node names, in insertion order. */
  get nodes(): readonly string[] {
    return [...this.members.keys()];
  }

  /** Number of points on the ring. */
  get pointCount(): number {
    return this.positions.length;
  }

  has(node: string): boolean {
    return this.members.has(node);
  }

  /**
   * Places `node` on the ring. A per-node point count lets callers weight nodes
   * (points ∝ weight, as Envoy's ring hash does). Returns false if already present.
   */
  add(node: string, virtualNodes = this.defaultVirtualNodes): boolean {
    if (this.members.has(node)) return false;
    assertVirtualNodes(virtualNodes);
    this.insert([[node, virtualNodes]]);
    return true;
  }

  /**
   * Adds many nodes with one sort and one merge, instead of one merge per node (which
   * costs O(nodes² · points) when building a large ring). Returns how many were new.
   */
  addAll(nodes: Iterable<string>, virtualNodes = this.defaultVirtualNodes): number {
    assertVirtualNodes(virtualNodes);
    const fresh = new Map<string, number>();
    for (const node of nodes) if (!this.members.has(node)) fresh.set(node, virtualNodes);
    this.insert([...fresh]);
    return fresh.size;
  }

  remove(node: string): boolean {
    const count = this.members.get(node);
    if (count === undefined) return false;
    this.members.delete(node);
    const keep = this.positions.length - count;
    const positions = new Uint32Array(keep);
    const owners = new Array<string>(keep);
    let j = 0;
    for (let i = 0; i < this.positions.length; i++) {
      const owner = this.owners[i] as string;
      if (owner === node) continue;
      positions[j] = this.positions[i] as number;
      owners[j] = owner;
      j++;
    }
    this.positions = positions;
    this.owners = owners;
    return true;
  }

  /** The node owning `key`, or undefined on an empty ring. */
  lookup(key: string): string | undefined {
    return this.lookupHash(this.hash(key));
  }

  /** Like `lookup`, for callers that already hold the key's 32-bit hash. */
  lookupHash(hash: number): string | undefined {
    const positions = this.positions;
    const n = positions.length;
    if (n === 0) return undefined;
    const h = hash >>> 0;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((positions[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo];
  }

  private insert(nodes: readonly (readonly [string, number])[]): void {
    if (nodes.length === 0) return;
    const points: { position: number; owner: string }[] = [];
    for (const [node, count] of nodes) {
      this.members.set(node, count);
      for (let i = 0; i < count; i++) points.push({ position: this.hash(`${node}#${i}`), owner: node });
    }
    points.sort(byPoint);
    this.merge(points);
  }

  private merge(fresh: readonly { position: number; owner: string }[]): void {
    const old = this.positions;
    const oldOwners = this.owners;
    const total = old.length + fresh.length;
    const positions = new Uint32Array(total);
    const owners = new Array<string>(total);
    let i = 0;
    let j = 0;
    for (let k = 0; k < total; k++) {
      const next = fresh[j];
      let takeOld = next === undefined;
      if (!takeOld && i < old.length) {
        const position = old[i] as number;
        const { position: p, owner } = next as { position: number; owner: string };
        takeOld = position < p || (position === p && (oldOwners[i] as string) < owner);
      }
      if (takeOld) {
        positions[k] = old[i] as number;
        owners[k] = oldOwners[i] as string;
        i++;
      } else {
        const point = next as { position: number; owner: string };
        positions[k] = point.position;
        owners[k] = point.owner;
        j++;
      }
    }
    this.positions = positions;
    this.owners = owners;
  }
}

// Colliding positions are ordered by owner name, so a collision resolves the same way
// regardless of the order nodes were added in.
function byPoint(a: { position: number; owner: string }, b: { position: number; owner: string }): number {
  return a.position - b.position || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0);
}

function assertVirtualNodes(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`virtual nodes per node must be a positive integer, got ${n}`);
  }
}
