/**
 * Whole responses shared between streams. A response is a shared head (the memoized body) plus a
 * per-stream tail holding the nonce and the control plane id. Nonces count per stream, so streams
 * that connected alike are at the same nonce: thousands of proxies in a reconnect storm all get
 * head + tail("1") for their first response, and a push reaches most of a fleet under the same
 * nonce. Joining once per (head, tail) hands grpc-js one buffer it need not concatenate per stream.
 */

import { framedMessage } from './framed-writes.js';

/** A joined response and the control plane id its tail holds (one per process in practice). */
interface Joined {
  readonly controlPlane: string;
  readonly bytes: Uint8Array;
}

/**
 * Per head, the joined responses by nonce; a few nonces at a time (streams drift apart). Keyed by
 * the nonce alone, so a hit (every stream of a push but the first at its nonce) builds no key.
 */
const joined = new WeakMap<Uint8Array, Map<string, Joined>>();
const NONCES_PER_HEAD = 4;

/** The per-stream tail of a response (wire.ts): nonce and control plane id. */
export type ResponseTail = (nonce: string, controlPlane: string) => Uint8Array;

/** `head` followed by its tail for `nonce` and `controlPlane`, built once and shared. */
export function joinResponse(head: Uint8Array, nonce: string, controlPlane: string, tail: ResponseTail): Uint8Array {
  let byNonce = joined.get(head);
  const hit = byNonce?.get(nonce);
  if (hit && hit.controlPlane === controlPlane) return hit.bytes;
  if (!byNonce) {
    byNonce = new Map();
    joined.set(head, byNonce);
  }
  if (!hit && byNonce.size >= NONCES_PER_HEAD) byNonce.delete(byNonce.keys().next().value as string);
  const t = tail(nonce, controlPlane);
  // Framed once here (gRPC header in front), so streams can write it below grpc-js (framed-writes.ts).
  const bytes = framedMessage((framed, at) => {
    framed.set(head, at);
    framed.set(t, at + head.length);
  }, head.length + t.length);
  byNonce.set(nonce, { controlPlane, bytes });
  return bytes;
}
