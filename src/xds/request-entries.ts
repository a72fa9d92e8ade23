import protobuf from 'protobufjs';
import { holdsMoreThan, type EntryShape } from '../runtime/protobuf-entries.js';

/**
 * The parts of a discovery request that protobufjs decodes into objects of their own, bounded:
 * the node's metadata (a google.protobuf.Struct, every value of it, at any depth) and
 * error_detail's details. A 4 MiB request of two-byte empty list values or Any details made two
 * million objects; twenty such streams took a process under the shipped 384 MiB heap past the
 * pod's 512 MiB. Real metadata has tens to hundreds of values, and Envoy sends no details.
 */
export const MAX_REQUEST_ENTRIES = 10_000;

const STRUCT: EntryShape = {};
const VALUE: EntryShape = { 5: STRUCT };
const LIST: EntryShape = { 1: VALUE };
VALUE[6] = LIST;
// Struct.fields is a map: entries of { key = 1, value = 2 }.
STRUCT[1] = { 2: VALUE };
/** Node.metadata (3). */
const NODE: EntryShape = { 3: STRUCT };
/** google.rpc.Status.details (3). */
const STATUS: EntryShape = { 3: undefined };
/** DeltaDiscoveryRequest: node (1), error_detail (7). */
const DELTA_REQUEST: EntryShape = { 1: NODE, 7: STATUS };

/** What request-names.ts decodes a node or a status with: a protobufjs type or this bound around one. */
export interface PartDecoder {
  decode(from: protobuf.Reader | Uint8Array, length?: number): unknown;
}

function refuseOver(bytes: Uint8Array, shape: EntryShape, what: string): void {
  if (holdsMoreThan(bytes, shape, MAX_REQUEST_ENTRIES)) {
    throw new RangeError(`${what} holds more than ${MAX_REQUEST_ENTRIES} entries`);
  }
}

/** `type`, refusing (throwing, before decoding) a part with more than MAX_REQUEST_ENTRIES entries by `shape`. */
function bounded(type: protobuf.Type, shape: EntryShape, what: string): PartDecoder {
  return {
    decode(from, length) {
      const bytes = from instanceof protobuf.Reader ? from.buf.subarray(from.pos, from.pos + (length ?? from.len - from.pos)) : from;
      refuseOver(bytes, shape, what);
      return length === undefined ? type.decode(from) : type.decode(from, length);
    },
  };
}

/** The node summary type, bounded. */
export const boundedNode = (type: protobuf.Type): PartDecoder => bounded(type, NODE, 'node.metadata');
/** google.rpc.Status, bounded. */
export const boundedStatus = (type: protobuf.Type): PartDecoder => bounded(type, STATUS, 'error_detail.details');
/** Throws before a DeltaDiscoveryRequest is decoded when its node metadata or error details are over the bound. */
export const checkDeltaRequest = (bytes: Uint8Array): void => refuseOver(bytes, DELTA_REQUEST, 'node.metadata and error_detail.details');
