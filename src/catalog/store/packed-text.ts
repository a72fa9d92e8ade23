/**
 * A big write's audit texts, stored deflated (SQLite store, schema version 4).
 *
 * A 20k-endpoint cluster's before and after are ~4.5 MB of JSON each. Stored as TEXT, the audit
 * row's insert copied ~9 MB into SQLite's pages on the event loop (25–30 ms, one statement that
 * cannot yield) and the commit wrote them to the WAL (~20 ms more); every request waited behind
 * both. Deflated at the fastest level the same texts are ~16× smaller (~280 KB per side), and the
 * deflating runs on libuv's thread pool, off the event loop. The text is handed to zlib in chunks
 * as it is made, so no flat multi-megabyte string is built either (bench/RESULTS.md "audit19").
 *
 * Only big writes (the sliced ones) pack their texts; every other audit row keeps plain TEXT, so
 * the log reads as before with any SQLite tool. A packed row is read back whole (inflated) only
 * when asked for in full (GET /v1/audit/{id}); a page of the log reads its stored summary.
 */
import { constants as bufferConstants } from 'node:buffer';
import { promisify } from 'node:util';
import { constants as zlibConstants, deflateRaw, inflateRawSync } from 'node:zlib';

const deflate = promisify(deflateRaw);

export interface PackedText {
  /** The text's UTF-8, deflated (raw deflate, no header). */
  readonly packed: Buffer;
  /** The text's length in UTF-8 octets: what octet_length() would give it stored as TEXT. */
  readonly bytes: number;
}

/** Collects a text's pieces as UTF-8 as they are made, then deflates the whole off the event loop. */
export class TextPacker {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  add(piece: string): void {
    const chunk = Buffer.from(piece, 'utf8');
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  async pack(): Promise<PackedText> {
    const whole = Buffer.concat(this.chunks, this.bytes);
    this.chunks.length = 0;
    // The fastest level: a record of endpoint entries still shrinks ~16× (level 6 gains 12 % more
    // for twice the CPU, which on two cores is the event loop's).
    const packed = await deflate(whole, { level: zlibConstants.Z_BEST_SPEED });
    return { packed, bytes: whole.length };
  }
}

/** Items joined per piece handed to the packer: ~200 KB of endpoint entries, a few ms of work. */
export const ITEMS_PER_PIECE = 1_000;

/**
 * Packs the JSON text `head` gives with `items` (already JSON, in order) put in place of its
 * array at `at` (the index just inside the array's `[`), `perPiece` items per `turn`.
 */
export async function packJoined(head: string, at: number, items: readonly string[], turn: () => Promise<void>, perPiece = ITEMS_PER_PIECE): Promise<PackedText> {
  const packer = new TextPacker();
  packer.add(head.slice(0, at));
  for (let i = 0; i < items.length; i += perPiece) {
    if (i > 0) await turn();
    packer.add(`${i > 0 ? ',' : ''}${items.slice(i, i + perPiece).join(',')}`);
  }
  packer.add(head.slice(at));
  return packer.pack();
}

/** Packs a text made whole. */
export function packText(text: string): Promise<PackedText> {
  const packer = new TextPacker();
  packer.add(text);
  return packer.pack();
}

/**
 * The text of a packed column. `bytes` (the row's stored size of its packed texts) bounds what
 * inflating may allocate: a damaged row is an error, not a runaway allocation.
 */
export function unpackText(packed: Buffer, bytes: number): string {
  const limit = Math.min(Math.max(0, bytes), bufferConstants.MAX_STRING_LENGTH);
  return inflateRawSync(packed, { maxOutputLength: Math.max(1, limit) }).toString('utf8');
}
