/**
 * Whole responses shared between streams. A response is a shared head (the memoized body) plus a
 * per-stream tail holding the nonce and the control plane id. Nonces count per stream, so streams
 * that connected alike are at the same nonce: thousands of proxies in a reconnect storm all get
 * head + tail("1") for their first response, and a push reaches most of a fleet under the same
 * nonce. Joining once per (head, tail) hands grpc-js one buffer it need not concatenate per stream.
 */

import { framedMessage } from './framed-writes.js';

/** Per head, the joined responses by tail content; a few nonces at a time (streams drift apart). */
const joined = new WeakMap<Uint8Array, Map<string, Uint8Array>>();
const NONCES_PER_HEAD = 4;

/** The per-stream tail of a response (wire.ts): nonce and control plane id. */
export type ResponseTail = (nonce: string, controlPlane: string) => Uint8Array;

/** `head` followed by its tail for `nonce` and `controlPlane`, built once and shared. */
export function joinResponse(head: Uint8Array, nonce: string, controlPlane: string, tail: ResponseTail): Uint8Array {
  const tailKey = `${nonce}\n${controlPlane}`;
  let byTail = joined.get(head);
  const hit = byTail?.get(tailKey);
  if (hit) return hit;
  if (!byTail) {
    byTail = new Map();
    joined.set(head, byTail);
  }
  if (byTail.size >= NONCES_PER_HEAD) byTail.delete(byTail.keys().next().value as string);
  const t = tail(nonce, controlPlane);
  // Framed once here (gRPC header in front), so streams can write it below grpc-js (framed-writes.ts).
  const out = framedMessage((framed, at) => {
    framed.set(head, at);
    framed.set(t, at + head.length);
  }, head.length + t.length);
  byTail.set(tailKey, out);
  return out;
}
