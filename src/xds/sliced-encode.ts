/**
 * A big ClusterLoadAssignment (tens of thousands of endpoints) encoded in pieces, with a turn of
 * the event loop allowed between them, producing exactly the bytes of a one-go encode.
 *
 * One 20k-endpoint assignment took tens of milliseconds to encode in one go (hundreds on a loaded
 * machine), and every admin request and xDS stream waited behind it. Protobuf allows a message to
 * be written as consecutive parts: the parts' fields concatenated are the message, a repeated
 * field's elements appended in order. protobufjs writes fields in field-number order, so writing
 * the fields numbered below the split field, then the split field's elements a chunk at a time,
 * then the fields numbered above it gives the same bytes as encoding the whole object, and so the
 * same hash and version.
 */
import protobuf from 'protobufjs';
import { envoyType } from './envoy-api.js';

/** Elements of the split field written per piece (~1-2 ms of encoding on a quiet machine). */
export const ELEMENTS_PER_PIECE = 1_000;

/** Called between pieces: resolves when the caller is ready for the next one (e.g. after a turn of the event loop). */
export type Turn = () => Promise<void>;

const ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const LOCALITY = 'envoy.config.endpoint.v3.LocalityLbEndpoints';

/** The ClusterLoadAssignment `value` (a translator object) encoded in pieces: same bytes as encodeMessage. */
export async function encodeLoadAssignmentSliced(value: Record<string, unknown>, turn: Turn): Promise<Uint8Array> {
  const localityType = envoyType(LOCALITY);
  const pacer = new Pacer(turn);
  const group = (item: unknown): Promise<Uint8Array> => encodeSplit(localityType, item as Record<string, unknown>, 'lb_endpoints', undefined, pacer);
  return encodeSplit(envoyType(ASSIGNMENT), value, 'endpoints', group, pacer);
}

/** Awaits the caller's turn once ELEMENTS_PER_PIECE endpoints have been written since the last one. */
class Pacer {
  private written = 0;
  constructor(private readonly turn: Turn) {}

  async wrote(n: number): Promise<void> {
    this.written += n;
    if (this.written < ELEMENTS_PER_PIECE) return;
    this.written = 0;
    await this.turn();
  }
}

/**
 * `value` as `type`, its repeated `field` written ELEMENTS_PER_PIECE elements at a time (or one at a
 * time with `element` when an element is itself split); the pacer counts the leaf elements written.
 */
async function encodeSplit(
  type: protobuf.Type,
  value: Record<string, unknown>,
  field: string,
  element: ((item: unknown) => Promise<Uint8Array>) | undefined,
  pacer: Pacer,
): Promise<Uint8Array> {
  const split = type.fields[field];
  if (!split?.repeated) throw new Error(`${type.fullName}.${field} is not a repeated field`);
  const below: Record<string, unknown> = {};
  const above: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === field) continue;
    const id = type.fields[key]?.id;
    if (id === undefined) continue; // fromObject drops unknown keys too
    (id < split.id ? below : above)[key] = v;
  }
  // An array, or a list that builds its elements as they are sliced (translate-clusters LazyList).
  const items = (value[field] ?? []) as Sliceable;
  const parts: Uint8Array[] = [encodeWhole(type, below)];
  if (element) {
    for (const item of items.slice(0, items.length)) parts.push(lengthDelimited(split.id, await element(item)));
  } else {
    for (let at = 0; at < items.length; at += ELEMENTS_PER_PIECE) {
      const chunk = items.slice(at, at + ELEMENTS_PER_PIECE);
      parts.push(encodeWhole(type, { [field]: chunk }));
      await pacer.wrote(chunk.length);
    }
  }
  parts.push(encodeWhole(type, above));
  return concat(parts);
}

interface Sliceable {
  readonly length: number;
  slice(from: number, to: number): unknown[];
}

function encodeWhole(type: protobuf.Type, value: Record<string, unknown>): Uint8Array {
  return type.encode(type.fromObject(value)).finish();
}

/** A length-delimited field (wire type 2): tag, length, bytes. */
function lengthDelimited(id: number, bytes: Uint8Array): Uint8Array {
  return protobuf.Writer.create().uint32((id << 3) | 2).bytes(bytes).finish();
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
