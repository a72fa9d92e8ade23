/**
 * A config file's YAML parsed on a worker thread when it is large.
 *
 * The `yaml` library builds a whole document of nodes before the value: a 5 MB file (100,000
 * endpoints) took ~3.4 s and ~500 MB of heap to parse. On the event loop that held every xDS
 * stream and admin request for the whole parse at each reload of the file, and left the garbage
 * in the server's heap (bench/RESULTS.md, "config23"). On a worker the loop holds only for the
 * value's structured copy, taken in pieces of ~1,000 endpoints (~1 ms each; ~120 ms in one piece
 * at 100,000 endpoints, "reload25"), and the garbage dies with the worker.
 * Small files are parsed inline: a worker costs tens of milliseconds to start.
 *
 * The worker runs the very call parseYaml runs inline (yaml-parse.ts), with the same options, and
 * sends back the same value or the same error lines (the value as structured clone copies it: a
 * `!!binary` Buffer arrives as a Uint8Array, which the config schema refuses as it does the Buffer).
 * Its heap is bounded like the main one: Node applies `--max-old-space-size` to workers too, and a
 * parse that runs out of it fails this parse (an edit rejected, a start refused with the reason)
 * where on the event loop it aborted the process.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { parseYaml, YAML_OPTIONS, type YamlParse } from './yaml-parse.js';

/** Above this many characters the parse runs on a worker (inline, ~30 ms of event loop at most). */
export const OFF_THREAD_CHARS = 64 * 1024;

/** Endpoints (or clusters) per piece of a value's list of clusters sent from the worker (~1 ms to copy each). */
const PIECE = 1000;

/*
 * A value with a list of clusters comes in pieces: first the value with that list empty and how
 * many pieces follow, then each piece of clusters once the main thread asks for it. One message
 * of a 20k-endpoint value took ~15 ms to copy in, one task, and a port delivers the messages it
 * has queued in one go: so the worker sends the next piece only when asked, a turn later.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { parseDocument } = require(workerData.yaml);
const firstLine = (e) => e.message.split('\\n')[0];
const doc = parseDocument(workerData.text, workerData.options);
let out;
if (doc.errors.length > 0) out = { errors: doc.errors.slice(0, workerData.maxErrors).map(firstLine) };
else {
  try { out = { value: doc.toJS() ?? {} }; } catch (err) { out = { errors: [firstLine(err)] }; }
}
const v = out.value;
if (typeof v !== 'object' || v === null || Array.isArray(v) || !Array.isArray(v.clusters) || v.clusters.length === 0) parentPort.postMessage(out);
else {
  const pieces = [];
  let piece = [];
  let size = 0;
  for (const c of v.clusters) {
    piece.push(c);
    size += 1 + (c !== null && typeof c === 'object' && Array.isArray(c.endpoints) ? c.endpoints.length : 0);
    if (size >= workerData.piece) { pieces.push(piece); piece = []; size = 0; }
  }
  if (piece.length > 0) pieces.push(piece);
  parentPort.postMessage({ head: { ...v, clusters: [] }, pieces: pieces.length });
  let next = 0;
  parentPort.on('message', () => {
    parentPort.postMessage({ clusters: pieces[next] });
    pieces[next++] = undefined;
    if (next >= pieces.length) parentPort.close();
  });
}
`;

/** A worker's message: the whole answer, or the head of a value whose clusters follow in pieces, or a piece. */
type WorkerMessage = YamlParse | { readonly head: Record<string, unknown>; readonly pieces: number } | { readonly clusters: unknown[] };

/**
 * parseYaml, on a worker thread when `text` is longer than `offThreadChars`. `signal`: aborting
 * ends the worker and rejects (a watcher stopped mid-parse does not wait seconds for it).
 */
export async function parseYamlOffThread(text: string, maxErrors: number, offThreadChars = OFF_THREAD_CHARS, signal?: AbortSignal): Promise<YamlParse> {
  if (text.length <= offThreadChars) return parseYaml(text, maxErrors);
  signal?.throwIfAborted();
  return new Promise<YamlParse>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { yaml: createRequire(import.meta.url).resolve('yaml'), text, options: YAML_OPTIONS, maxErrors, piece: PIECE } });
    let settled = false;
    const settle = (done: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', abort);
      // Its answer is in: whatever it still holds (a value, a port) must not outlive the parse.
      void worker.terminate();
      done();
    };
    const abort = (): void => settle(() => reject(signal?.reason));
    signal?.addEventListener('abort', abort, { once: true });
    const value = new ValueInPieces(() => setImmediate(() => worker.postMessage(null)));
    worker.on('message', (m: WorkerMessage) => {
      const done = value.take(m);
      if (done !== undefined) settle(() => resolve(done));
    });
    // A worker that dies (out of memory, a library bug) fails this parse, not the process.
    worker.once('error', (err) => settle(() => reject(new Error(`YAML parse failed: ${err.message}`))));
    worker.once('exit', (code) => settle(() => reject(new Error(`YAML parse failed: its worker exited with code ${code}`))));
  });
}

/** Puts a value sent in pieces together (see WORKER_SOURCE); `ask` requests the next piece. */
class ValueInPieces {
  private head: Record<string, unknown> | undefined;
  private left = 0;
  private readonly clusters: unknown[] = [];

  constructor(private readonly ask: () => void) {}

  /** The parse once complete, else undefined (and the next piece asked for). */
  take(m: WorkerMessage): YamlParse | undefined {
    if ('head' in m) {
      this.head = m.head;
      this.left = m.pieces;
    } else if ('clusters' in m) {
      for (const c of m.clusters) this.clusters.push(c);
      this.left--;
    } else return m;
    if (this.left > 0) {
      this.ask();
      return undefined;
    }
    const value = this.head as Record<string, unknown>;
    value.clusters = this.clusters;
    return { value };
  }
}
