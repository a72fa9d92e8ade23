/**
 * Whole responses shared between streams. A response is a shared head (the memoized body) plus a
 * per-stream tail holding the nonce and the control plane id. Nonces count per stream, so streams
 * that connected alike are at the same nonce: thousands of proxies in a reconnect storm all get
 * head + tail("1") for their first response, and a push reaches most of a fleet under the same
 * nonce. Joining once per (head, tail) hands grpc-js one buffer it need not concatenate per stream.
 */

/** Per head, the joined responses by tail content; a few nonces at a time (streams drift apart). */
const joined = new WeakMap<Uint8Array, Map<string, Uint8Array>>();
const NONCES_PER_HEAD = 4;

/** `head` followed by `tail`, built once and shared; `tailKey` names the tail's content (nonce, control plane). */
export function joinResponse(head: Uint8Array, tailKey: string, tail: () => Uint8Array): Uint8Array {
  let byTail = joined.get(head);
  const hit = byTail?.get(tailKey);
  if (hit) return hit;
  if (!byTail) {
    byTail = new Map();
    joined.set(head, byTail);
  }
  if (byTail.size >= NONCES_PER_HEAD) byTail.delete(byTail.keys().next().value as string);
  const t = tail();
  const out = new Uint8Array(head.length + t.length);
  out.set(head, 0);
  out.set(t, head.length);
  byTail.set(tailKey, out);
  return out;
}
