/**
 * Pushes told from the changed names (cache.ts TypeChange, sotw-stream.ts `settled`, delta-stream.ts
 * `catchUp` and `buildDeltaPieceFromChanges`): a stream none of whose names changed skips its
 * subscription, and a Delta piece is built from the changed names. Random sequences of publishes
 * (resources added, replaced, removed), subscription changes and stalled clients, over SotW and
 * Delta streams with named and wildcard subscriptions: after every step each client that reads
 * holds exactly what its subscription resolves to, as a client applying every response would.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { XdsCache, type Snapshot } from '../../src/xds/cache.js';
import { DeltaStream } from '../../src/xds/delta-stream.js';
import { TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import type { EncodedResource } from '../../src/xds/resource.js';
import { SotwStream } from '../../src/xds/sotw-stream.js';
import type { StreamDeps } from '../../src/xds/stream-common.js';
import { decodeDeltaDiscoveryResponse, decodeDiscoveryResponse } from '../support/xds-client.js';
import { cluster, endpoints, FakeIo, groups, resourceSet } from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS } = TYPE;
const TYPES = [CDS, EDS] as const;
const NAMES = Array.from({ length: 8 }, (_, i) => `n${i}`);
const POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM'];

/** Every resource a run can publish: per type, name and variant. */
const variant = (type: XdsTypeUrl, name: string, v: number): EncodedResource => (type === CDS ? cluster(name, POLICIES[v]) : endpoints(name, 8000 + v));
const NAME_OF_HASH = new Map(TYPES.flatMap((t) => NAMES.flatMap((n) => [0, 1, 2].map((v) => [variant(t, n, v).hash, n] as const))));
const hashOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url').slice(0, 16);

type Sub = '*' | readonly string[];

/** A client that applies every response it is sent and ACKs it, as Envoy and gRPC do. */
interface Client {
  readonly protocol: 'sotw' | 'delta';
  readonly io: FakeIo;
  readonly stream: SotwStream | DeltaStream;
  readonly subs: Map<XdsTypeUrl, Sub>;
  /** name → version (the resource's hash) the client holds, per type. */
  readonly held: Map<XdsTypeUrl, Map<string, string>>;
}

/**
 * A SotW request's names: '*' for a wildcard (the first request's empty list means it too, kept
 * until the client names something). An empty named list would be that legacy wildcard, so the
 * model never subscribes CDS to nothing (see `request`; a first Delta request subscribing nothing is a wildcard too).
 */
function namesList(sub: Sub, first = false): string[] {
  return sub === '*' ? (first ? [] : ['*']) : [...sub];
}

function open(deps: StreamDeps, protocol: 'sotw' | 'delta', i: number, cdsSub: Sub, edsSub: Sub): Client {
  const io = new FakeIo();
  const stream = protocol === 'sotw' ? new SotwStream(deps, io, 'ads') : new DeltaStream(deps, io, 'ads-delta');
  const c: Client = { protocol, io, stream, subs: new Map(), held: new Map(TYPES.map((t) => [t, new Map()])) };
  const node = { id: `p${i}`, cluster: 'default' };
  request(c, CDS, cdsSub, node);
  request(c, EDS, edsSub);
  return c;
}

/** The client changes its subscription of `type` to `sub` (its first request when it had none). */
function request(c: Client, type: XdsTypeUrl, wanted: Sub, node?: { id: string; cluster: string }): void {
  const sub = type === CDS && wanted.length === 0 ? ['n7'] : wanted;
  const before = c.subs.get(type);
  c.subs.set(type, sub);
  const held = c.held.get(type) as Map<string, string>;
  // A client forgets what it no longer subscribes to.
  if (sub !== '*') for (const name of [...held.keys()]) if (!sub.includes(name)) held.delete(name);
  if (c.protocol === 'sotw') {
    c.stream.onRequest({ node, version_info: '', resource_names: namesList(sub, before === undefined), type_url: type, response_nonce: '' } as never);
  } else {
    const was = before === undefined ? [] : before === '*' ? ['*'] : [...before];
    const now = sub === '*' ? ['*'] : [...sub];
    c.stream.onRequest({
      node, type_url: type, initial_resource_versions: {}, response_nonce: '',
      resource_names_subscribe: now.filter((n) => !was.includes(n)), resource_names_unsubscribe: was.filter((n) => !now.includes(n)),
    } as never);
  }
  drain(c);
}

/** Applies and ACKs everything the client was sent (ACKs may bring more: read until quiet). */
function drain(c: Client): void {
  for (let rounds = 0; c.io.sent.length > 0; rounds++) {
    if (rounds > 50) throw new Error('responses never stop');
    for (const bytes of c.io.sent.splice(0)) (c.protocol === 'sotw' ? applySotw : applyDelta)(c, bytes);
  }
}

function applySotw(c: Client, bytes: Buffer): void {
  const r = decodeDiscoveryResponse(bytes);
  const type = r.type_url as XdsTypeUrl;
  const held = c.held.get(type) as Map<string, string>;
  // CDS is state of the world (absence is deletion); EDS responses carry only what changed.
  if (type === CDS) held.clear();
  for (const any of r.resources) {
    const hash = hashOf(any.value);
    held.set(NAME_OF_HASH.get(hash) ?? '?', hash);
  }
  const sub = c.subs.get(type) ?? [];
  c.stream.onRequest({ version_info: r.version_info, resource_names: namesList(sub), type_url: type, response_nonce: r.nonce } as never);
}

function applyDelta(c: Client, bytes: Buffer): void {
  const r = decodeDeltaDiscoveryResponse(bytes);
  const held = c.held.get(r.type_url as XdsTypeUrl) as Map<string, string>;
  for (const res of r.resources) held.set(res.name, res.version);
  for (const name of r.removed_resources) held.delete(name);
  c.stream.onRequest({ type_url: r.type_url, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: r.nonce } as never);
}

/** What the client must hold of `type`: every subscribed resource the snapshot has, at its version. */
function expected(snapshot: Snapshot, type: XdsTypeUrl, sub: Sub): Map<string, string> {
  const pool = snapshot.resources(type);
  const names = sub === '*' ? [...pool.keys()] : sub.filter((n) => pool.has(n));
  return new Map(names.map((n) => [n, (pool.get(n) as EncodedResource).hash]));
}

function check(c: Client, snapshot: Snapshot): void {
  for (const type of TYPES) {
    const want = expected(snapshot, type, c.subs.get(type) ?? []);
    const held = c.held.get(type) as Map<string, string>;
    // SotW EDS: absence is not deletion, so a removed assignment may stay with the client.
    const got = c.protocol === 'sotw' && type === EDS ? new Map([...held].filter(([n]) => want.has(n))) : held;
    expect(Object.fromEntries(got), `${c.protocol} ${type === CDS ? 'CDS' : 'EDS'} subscribed to ${JSON.stringify(c.subs.get(type))}`).toEqual(Object.fromEntries(want));
  }
}

const name = fc.constantFrom(...NAMES);
const named = fc.uniqueArray(name, { maxLength: 5 });
const sub = fc.oneof(fc.constant<Sub>('*'), named);
const step = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('publish' as const), edits: fc.array(fc.record({ eds: fc.boolean(), name, v: fc.integer({ min: -1, max: 2 }) }), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('subscribe' as const), client: fc.nat(3), eds: fc.boolean(), names: named, wildcardCds: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stall' as const), client: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), client: fc.nat(3) }) },
);

describe('pushes told from the changed names', () => {
  test('every client that reads holds exactly what its subscription resolves to, after any sequence of steps', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(sub, named)), fc.array(step, { minLength: 5, maxLength: 60, size: 'medium' }), (initial, steps) => {
        const content = new Map<XdsTypeUrl, Map<string, number>>(TYPES.map((t) => [t, new Map(NAMES.slice(0, 5).map((n) => [n, 0]))]));
        const cache = new XdsCache();
        const publish = (): void => {
          cache.update(groups(resourceSet(...TYPES.flatMap((t) => [...(content.get(t) as Map<string, number>)].map(([n, v]) => variant(t, n, v))))));
        };
        publish();
        const deps: StreamDeps = { cache, registry: new ProxyRegistry(() => 0), log: pino({ level: 'silent' }), maxResourceNames: 100, controlPlaneId: 'changed-names' };
        const clients = Array.from({ length: 4 }, (_, i) => {
          const [cds, eds] = initial[i] ?? ['*', NAMES.slice(0, 3)];
          return open(deps, i % 2 === 0 ? 'sotw' : 'delta', i, cds, eds);
        });
        const snapshot = (): Snapshot => cache.snapshotFor('default');
        for (const s of steps) {
          if (s.kind === 'publish') {
            for (const e of s.edits) {
              const byName = content.get(e.eds ? EDS : CDS) as Map<string, number>;
              if (e.v < 0) byName.delete(e.name);
              else byName.set(e.name, e.v);
            }
            publish();
            // As the server does: every stream of the group is woken; one that does not read keeps what it was sent queued.
            for (const c of clients) {
              c.stream.onCacheChange();
              if (!c.io.full) drain(c);
            }
          } else {
            const c = clients[s.client] as Client;
            if (s.kind === 'subscribe') request(c, s.eds ? EDS : CDS, s.eds ? s.names : s.wildcardCds ? '*' : s.names);
            else if (s.kind === 'stall') c.io.full = true;
            else if (c.io.full) {
              // The client reads again: what was queued arrives, and the server is told its buffer drained.
              c.io.full = false;
              drain(c);
              c.stream.onCacheChange();
              drain(c);
            }
          }
          for (const c of clients) if (!c.io.full) check(c, snapshot());
        }
      }),
      {
        numRuns: 300,
        examples: [
          // A client that stalls through two changes, only the first of them to its names, then reads.
          [[], [{ kind: 'stall', client: 0 }, { kind: 'publish', edits: [{ eds: true, name: 'n0', v: 1 }] }, { kind: 'publish', edits: [{ eds: true, name: 'n4', v: 1 }] }, { kind: 'read', client: 0 }]],
          [[], [{ kind: 'stall', client: 1 }, { kind: 'publish', edits: [{ eds: true, name: 'n0', v: 1 }] }, { kind: 'publish', edits: [{ eds: true, name: 'n4', v: 1 }] }, { kind: 'read', client: 1 }]],
        ],
      },
    );
  });

  test("a snapshot tells each changed type's added, replaced and removed names, and the content it changed from", () => {
    const cache = new XdsCache();
    cache.update(groups(resourceSet(cluster('a'), cluster('b'), endpoints('a'), endpoints('b'))));
    const first = cache.snapshotFor('default');
    cache.update(groups(resourceSet(cluster('a'), cluster('c'), endpoints('a', 9090), endpoints('b'))));
    const second = cache.snapshotFor('default');
    expect([...(second.changeOf(CDS)?.names ?? [])].sort()).toEqual(['b', 'c']);
    expect([...(second.changeOf(EDS)?.names ?? [])]).toEqual(['a']);
    expect(second.changeOf(CDS)?.from).toBe(first.contentToken(CDS));
    // A type carried unchanged answers with its content's own change, and keeps its content token.
    cache.update(groups(resourceSet(cluster('a'), cluster('c'), endpoints('a', 9091), endpoints('b'))));
    const third = cache.snapshotFor('default');
    expect(third.contentToken(CDS)).toBe(second.contentToken(CDS));
    expect(third.changeOf(CDS)).toBe(second.changeOf(CDS));
    expect([...(third.changeOf(EDS)?.names ?? [])]).toEqual(['a']);
  });
});
