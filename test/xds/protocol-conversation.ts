/**
 * One client-side vocabulary for SotW and Delta conversations, so that a protocol rule both
 * share is written once and run for both (protocol-shared.test.ts). What differs is said here:
 * how a subscription changes on the wire, and what a response that drops a resource looks like.
 */
import { WILDCARD_TYPES } from '../../src/xds/stream-common.js';
import type { XdsTypeUrl } from '../../src/xds/envoy-api.js';
import {
  ADS, ADS_DELTA, decodeResources, namesOf, type DecodedResource, type DeltaDiscoveryResponse, type DeltaStream,
  type DiscoveryResponse, type SotwStream, type StreamStatus, type XdsClient,
} from '../support/xds-client.js';

export const PROTOCOLS = ['sotw', 'delta'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** A response, protocol-neutral. */
export interface Reply {
  readonly type: string;
  /** Sorted names of the resources carried. */
  readonly names: string[];
  /** Sorted removed_resources (Delta; always empty for SotW). */
  readonly removed: string[];
  readonly nonce: string;
  readonly resources: DecodedResource[];
  /** The version the client holds for `name` after this response (SotW: version_info; Delta: the resource's). */
  versionOf(name: string): string | undefined;
}

export interface Conversation {
  readonly protocol: Protocol;
  /** Adds names to the type's subscription (the first request of a stream carries `node`). */
  subscribe(type: string, names: string[], node?: object): void;
  /** Removes names from the type's subscription. */
  unsubscribe(type: string, names: string[]): void;
  ack(r: Reply): void;
  nack(r: Reply, message: string): void;
  next(): Promise<Reply>;
  nextOf(type: string): Promise<Reply>;
  expectNone(ms?: number): Promise<void>;
  closed(timeoutMs?: number): Promise<StreamStatus>;
  readonly ended: StreamStatus | undefined;
  /** Whether `r` tells the client `name` is gone (SotW: a full-state type without it; Delta: removed_resources). */
  drops(r: Reply, name: string): boolean;
}

/** Opens a conversation on ADS (or on a per-type service `path`) in the given protocol. */
export function converse(client: XdsClient, protocol: Protocol, path?: string): Conversation {
  return protocol === 'sotw' ? new SotwConversation(client.sotw(path ?? ADS)) : new DeltaConversation(client.delta(path ?? ADS_DELTA));
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

/** The client stream calls both conversations make the same way. */
interface ClientStream<Resp> {
  readonly ended: StreamStatus | undefined;
  ack(resp: Resp): void;
  nack(resp: Resp, message: string): void;
  next(): Promise<Resp>;
  nextOf(type: string): Promise<Resp>;
  expectNone(ms?: number): Promise<void>;
  closed(timeoutMs?: number): Promise<StreamStatus>;
}

abstract class BaseConversation<Resp> {
  private readonly raw = new WeakMap<Reply, Resp>();

  constructor(protected readonly s: ClientStream<Resp>) {}

  get ended(): StreamStatus | undefined {
    return this.s.ended;
  }

  ack(r: Reply): void {
    this.s.ack(this.original(r));
  }

  nack(r: Reply, message: string): void {
    this.s.nack(this.original(r), message);
  }

  async next(): Promise<Reply> {
    return this.remember(await this.s.next());
  }

  async nextOf(type: string): Promise<Reply> {
    return this.remember(await this.s.nextOf(type));
  }

  expectNone(ms?: number): Promise<void> {
    return this.s.expectNone(ms);
  }

  closed(timeoutMs?: number): Promise<StreamStatus> {
    return this.s.closed(timeoutMs);
  }

  protected abstract wrap(raw: Resp): Reply;

  private remember(raw: Resp): Reply {
    const reply = this.wrap(raw);
    this.raw.set(reply, raw);
    return reply;
  }

  private original(r: Reply): Resp {
    const raw = this.raw.get(r);
    if (!raw) throw new Error('not a reply of this conversation');
    return raw;
  }
}

class SotwConversation extends BaseConversation<DiscoveryResponse> implements Conversation {
  readonly protocol = 'sotw';
  private readonly names = new Map<string, Set<string>>();

  constructor(private readonly sotw: SotwStream) {
    super(sotw);
  }

  subscribe(type: string, names: string[], node?: object): void {
    const set = this.names.get(type) ?? new Set();
    for (const n of names) set.add(n);
    this.names.set(type, set);
    this.sotw.request(type, [...set], node ? { node } : {});
  }

  unsubscribe(type: string, names: string[]): void {
    const set = this.names.get(type) ?? new Set();
    for (const n of names) set.delete(n);
    this.sotw.request(type, [...set]);
  }

  drops(r: Reply, name: string): boolean {
    return WILDCARD_TYPES.has(r.type as XdsTypeUrl) && !r.names.includes(name);
  }

  protected wrap(raw: DiscoveryResponse): Reply {
    const names = namesOf(raw);
    return {
      type: raw.type_url,
      names,
      removed: [],
      nonce: raw.nonce,
      resources: decodeResources(raw),
      versionOf: (name) => (names.includes(name) ? raw.version_info : undefined),
    };
  }
}

class DeltaConversation extends BaseConversation<DeltaDiscoveryResponse> implements Conversation {
  readonly protocol = 'delta';

  constructor(private readonly delta: DeltaStream) {
    super(delta);
  }

  subscribe(type: string, names: string[], node?: object): void {
    this.delta.send({ ...(node ? { node } : {}), type_url: type, resource_names_subscribe: names });
  }

  unsubscribe(type: string, names: string[]): void {
    this.delta.send({ type_url: type, resource_names_unsubscribe: names });
  }

  drops(r: Reply, name: string): boolean {
    return r.removed.includes(name);
  }

  protected wrap(raw: DeltaDiscoveryResponse): Reply {
    return {
      type: raw.type_url,
      names: namesOf(raw),
      removed: sorted(raw.removed_resources),
      nonce: raw.nonce,
      resources: decodeResources(raw),
      versionOf: (name) => raw.resources.find((r) => r.name === name)?.version,
    };
  }
}
