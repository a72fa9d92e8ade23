import * as grpc from '@grpc/grpc-js';
import { describeLimit, type LimitHit, type XdsLimits } from './limits.js';
import { peerGroup } from './peer-group.js';

/** grpc-js's own words for a message over its size limits (stream-decoder.ts, server-interceptors.ts). */
const TOO_LARGE: readonly { readonly pattern: RegExp; readonly limit: 'maxRequestBytes' | 'maxResponseBytes'; readonly what: string }[] = [
  { pattern: /^Received message larger than max \((\d+) vs \d+\)$/, limit: 'maxRequestBytes', what: 'request message' },
  { pattern: /^Received message that decompresses to a size larger than \d+$/, limit: 'maxRequestBytes', what: 'decompressed request message' },
  { pattern: /^Sent message larger than max \((\d+) vs \d+\)$/, limit: 'maxResponseBytes', what: 'response message' },
];

/**
 * Admits gRPC calls (every service on the port) while the caller (its address or IPv6 prefix) and the server as a
 * whole hold fewer calls than their limits; refuses the rest with RESOURCE_EXHAUSTED naming the
 * limit. Also names the limit in grpc-js's own message-size refusals, and counts every refusal.
 */
export class StreamGate {
  private readonly perPeer = new Map<string, number>();
  private open = 0;

  constructor(
    private readonly limits: XdsLimits,
    private readonly onLimit: LimitHit,
  ) {}

  get streams(): number {
    return this.open;
  }

  /** The server interceptor to install (first in the chain: it sees the transport call itself). */
  readonly interceptor: grpc.ServerInterceptor = (_method, call) => {
    this.nameSizeRefusals(call);
    const peer = call.getConnectionInfo().remoteAddress ?? 'unknown';
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        const refused = this.admitCall(peer);
        if (refused) {
          call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: refused });
          return;
        }
        let released = false;
        // onCancel runs exactly once when the call ends, however it ends (status sent, reset, connection lost).
        next({
          onCancel: () => {
            if (released) return;
            released = true;
            this.release(peer);
          },
        });
      },
    });
  };

  /**
   * Admits a call fulcrum serves without grpc-js's call (discovery-router.ts): undefined, or the
   * RESOURCE_EXHAUSTED message (counted). An admitted call is released once, with `release`.
   */
  admitCall(peer: string): string | undefined {
    const refused = this.admit(peer);
    if (!refused) return undefined;
    this.onLimit(refused);
    return `too many calls: ${describeLimit(this.limits, refused)} reached`;
  }

  /** A message over a size limit: counted, and the status message naming the setting. */
  tooLarge(limit: 'maxRequestBytes' | 'maxResponseBytes', bytes: number): string {
    this.onLimit(limit);
    return this.sizeMessage(`${limit === 'maxRequestBytes' ? 'request' : 'response'} message`, String(bytes), limit);
  }

  private sizeMessage(what: string, bytes: string | undefined, limit: 'maxRequestBytes' | 'maxResponseBytes'): string {
    return `${what}${bytes ? ` of ${bytes} bytes` : ''} exceeds ${describeLimit(this.limits, limit)}`;
  }

  private admit(address: string): 'maxStreams' | 'maxStreamsPerPeer' | undefined {
    const peer = this.group(address);
    const mine = this.perPeer.get(peer) ?? 0;
    if (this.open >= this.limits.maxStreams) return 'maxStreams';
    if (mine >= this.limits.maxStreamsPerPeer) return 'maxStreamsPerPeer';
    this.open += 1;
    this.perPeer.set(peer, mine + 1);
    return undefined;
  }

  /** Gives back a call admitted for `address`. */
  release(address: string): void {
    const peer = this.group(address);
    this.open -= 1;
    const left = (this.perPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(peer, left);
    else this.perPeer.delete(peer);
  }

  /** Calls are counted per peer address, or per IPv6 prefix (peer-group.ts). */
  private group(address: string): string {
    return peerGroup(address, this.limits.ipv6PeerPrefixLength);
  }

  /**
   * grpc-js refuses an oversized message inside the transport call (from the length prefix,
   * before buffering it), by calling that call's own sendStatus: no interceptor sees it. So the
   * first interceptor wraps that one method on the call it is given, to count the refusal and
   * say which setting refused it.
   */
  private nameSizeRefusals(call: grpc.ServerInterceptingCallInterface): void {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (status) => {
      const details = status.details ?? '';
      const hit = status.code === grpc.status.RESOURCE_EXHAUSTED ? TOO_LARGE.find((t) => t.pattern.test(details)) : undefined;
      if (!hit) return send(status);
      this.onLimit(hit.limit);
      const size = hit.pattern.exec(details)?.[1];
      send({ ...status, details: this.sizeMessage(hit.what, size, hit.limit) });
    };
  }
}
