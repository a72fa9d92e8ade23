/** Small helpers for protobufjs plain objects of Envoy's well-known types. */

/** Milliseconds → google.protobuf.Duration. */
export function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
