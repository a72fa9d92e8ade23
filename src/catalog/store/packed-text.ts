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
import { finished } from 'node:stream/promises';
import { constants as zlibConstants, createDeflateRaw, inflateRawSync, type DeflateRaw } from 'node:zlib';

export interface PackedText {
  /** The text's UTF-8, deflated (raw deflate, no header). */
  readonly packed: Buffer;
  /** The text's length in UTF-8 octets: what octet_length() would give it stored as TEXT. */
  readonly bytes: number;
}

/** UTF-16 code units encoded per write to zlib; each takes at most 3 UTF-8 octets, so a segment fits its scratch buffer. */
const SEGMENT_UNITS = 64 * 1024;
const SCRATCH_BYTES = 3 * SEGMENT_UNITS;

/**
 * Deflates a text as its pieces are made, off the event loop, through two reused scratch buffers.
 *
 * Not a Buffer per piece and a concatenated copy of the whole: that made ~9 MB of ArrayBuffers per
 * 4.6 MB text, memory outside V8's heap that it counts against a budget of 64 MB between two full
 * collections. Once past it, every further external allocation (each HTTP/2 request's nghttp2
 * buffers included) made the main thread do a step of marking: after a few big writes, a
 * probe waited 50–80 ms behind the next one (bench/RESULTS.md "external22"). Here a text costs
 * its two scratch buffers, zlib's own state (~256 KB, held until the text is packed) and its
 * deflated output. zlib reads one scratch buffer on libuv's thread pool while the next segment
 * is encoded into the other.
 *
 * One `add` at a time: await each before the next (a second one meanwhile is refused, as it could
 * overwrite a scratch buffer zlib is reading).
 */
export class TextPacker {
  private deflater: DeflateRaw | undefined;
  /** Settles when the stream closes (ended, failed or destroyed): after a zlib error no pending write's callback runs. */
  private closed: Promise<void> = Promise.resolve();
  private readonly output: Buffer[] = [];
  private outputBytes = 0;
  private bytes = 0;
  private failure: Error | undefined;
  private adding = false;
  private readonly scratch: (Buffer | undefined)[] = [undefined, undefined];
  /** Per scratch buffer: settles once zlib has read what was last written from it, or the stream closed (never rejects). */
  private readonly reading: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  private slot = 0;

  /** Adds a piece of the text; settles once it is handed to zlib (the scratch buffer it needs is free). */
  async add(piece: string): Promise<void> {
    if (this.adding) throw new Error('TextPacker: add() before the previous add() settled');
    this.adding = true;
    try {
      for (let from = 0; from < piece.length; ) {
        let to = Math.min(piece.length, from + SEGMENT_UNITS);
        // A surrogate pair stays whole: split, each half would encode as U+FFFD.
        if (to < piece.length && isHighSurrogate(piece.charCodeAt(to - 1))) to--;
        await this.write(from === 0 && to === piece.length ? piece : piece.slice(from, to));
        from = to;
      }
    } finally {
      this.adding = false;
    }
  }

  async pack(): Promise<PackedText> {
    if (this.adding) throw new Error('TextPacker: pack() before the last add() settled');
    const deflater = this.stream();
    await Promise.all(this.reading);
    if (!this.failure) {
      deflater.end();
      await finished(deflater, { cleanup: true }).catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      });
    }
    if (this.failure) {
      this.abort();
      throw this.failure;
    }
    this.scratch.fill(undefined);
    const packed = Buffer.concat(this.output, this.outputBytes);
    this.output.length = 0;
    return { packed, bytes: this.bytes };
  }

  /** Gives up the text: zlib's state and the buffers are released now, not when collected. */
  abort(): void {
    this.deflater?.destroy();
    this.scratch.fill(undefined);
    this.output.length = 0;
  }

  private async write(segment: string): Promise<void> {
    const slot = this.slot;
    this.slot ^= 1;
    await this.reading[slot];
    if (this.failure) throw this.failure;
    const buffer = (this.scratch[slot] ??= Buffer.allocUnsafe(SCRATCH_BYTES));
    const n = buffer.write(segment, 'utf8');
    this.bytes += n;
    const deflater = this.stream();
    const read = new Promise<void>((resolve) => {
      deflater.write(buffer.subarray(0, n), (err) => {
        if (err) this.failure ??= err;
        resolve();
      });
    });
    this.reading[slot] = Promise.race([read, this.closed]);
  }

  private stream(): DeflateRaw {
    if (this.deflater) return this.deflater;
    // The fastest level: a record of endpoint entries still shrinks ~16× (level 6 gains 12 % more
    // for twice the CPU, which on two cores is the event loop's).
    const deflater = createDeflateRaw({ level: zlibConstants.Z_BEST_SPEED });
    deflater.on('data', (chunk: Buffer) => {
      this.output.push(chunk);
      this.outputBytes += chunk.length;
    });
    deflater.on('error', (err) => {
      this.failure ??= err;
    });
    this.closed = new Promise<void>((resolve) => deflater.once('close', () => resolve()));
    this.deflater = deflater;
    return deflater;
  }
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** Items joined per piece handed to the packer: ~200 KB of endpoint entries, a few ms of work. */
export const ITEMS_PER_PIECE = 1_000;

/**
 * Packs the JSON text `head` gives with `items` (already JSON, in order) put in place of its
 * array at `at` (the index just inside the array's `[`), `perPiece` items per `turn`.
 */
export async function packJoined(head: string, at: number, items: readonly string[], turn: () => Promise<void>, perPiece = ITEMS_PER_PIECE): Promise<PackedText> {
  return packWith(async (packer) => {
    await packer.add(head.slice(0, at));
    for (let i = 0; i < items.length; i += perPiece) {
      if (i > 0) await turn();
      await packer.add(`${i > 0 ? ',' : ''}${items.slice(i, i + perPiece).join(',')}`);
    }
    await packer.add(head.slice(at));
  });
}

/** Packs a text made whole. */
export function packText(text: string): Promise<PackedText> {
  return packWith((packer) => packer.add(text));
}

/** Packs what `fill` adds; a failure (of zlib, or of the caller's turn) releases the packer at once. */
async function packWith(fill: (packer: TextPacker) => Promise<void>): Promise<PackedText> {
  const packer = new TextPacker();
  try {
    await fill(packer);
  } catch (err) {
    packer.abort();
    throw err;
  }
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
