import protobuf from 'protobufjs';
import { holdsMoreThan, STRUCT_ENTRIES, type EntryShape } from '../runtime/protobuf-entries.js';

/**
 * The parts of a discovery request that protobufjs decodes into objects of their own, bounded:
 * the node's Structs (its metadata and its build version's, every value of them, at any depth),
 * error_detail's details and a Delta request's resource locators. A 4 MiB request of two-byte
 * empty list values, Any details or locators made two million objects; twenty such streams took a
 * process under the shipped 384 MiB heap past the pod's 512 MiB. Real metadata has tens to
 * hundreds of values, Envoy sends no details, and fulcrum reads no locators.
 */
export const MAX_REQUEST_ENTRIES = 10_000;

/** Node.metadata (3) and user_agent_build_version (8)'s BuildVersion.metadata (2). */
const NODE: EntryShape = { 3: STRUCT_ENTRIES, 8: { 2: STRUCT_ENTRIES } };
/** google.rpc.Status.details (3). */
const STATUS: EntryShape = { 3: undefined };
/** A ResourceLocator: its dynamic_parameters (2), a map. */
const LOCATOR: EntryShape = { 2: undefined };
/** DeltaDiscoveryRequest: node (1), error_detail (7), resource_locators_subscribe (8) and _unsubscribe (9). */
const DELTA_REQUEST: EntryShape = { 1: NODE, 7: STATUS, 8: LOCATOR, 9: LOCATOR };

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
export const boundedNode = (type: protobuf.Type): PartDecoder => bounded(type, NODE, 'node metadata');
/** google.rpc.Status, bounded. */
export const boundedStatus = (type: protobuf.Type): PartDecoder => bounded(type, STATUS, 'error_detail.details');
/** Throws before a DeltaDiscoveryRequest is decoded when its node metadata, error details and resource locators are over the bound. */
export const checkDeltaRequest = (bytes: Uint8Array): void => refuseOver(bytes, DELTA_REQUEST, 'node metadata, error_detail.details and resource locators');
