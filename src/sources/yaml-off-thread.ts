/**
 * A config file's YAML parsed on a worker thread when it is large.
 *
 * The `yaml` library builds a whole document of nodes before the value: a 5 MB file (100,000
 * endpoints) took ~3.4 s and ~500 MB of heap to parse. On the event loop that held every xDS
 * stream and admin request for the whole parse at each reload of the file, and left the garbage
 * in the server's heap (bench/RESULTS.md, "config23"). On a worker the loop holds only for the
 * value's structured copy (~120 ms at 100,000 endpoints) and the garbage dies with the worker.
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
parentPort.postMessage(out);
`;

/**
 * parseYaml, on a worker thread when `text` is longer than `offThreadChars`. `signal`: aborting
 * ends the worker and rejects (a watcher stopped mid-parse does not wait seconds for it).
 */
export async function parseYamlOffThread(text: string, maxErrors: number, offThreadChars = OFF_THREAD_CHARS, signal?: AbortSignal): Promise<YamlParse> {
  if (text.length <= offThreadChars) return parseYaml(text, maxErrors);
  signal?.throwIfAborted();
  return new Promise<YamlParse>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { yaml: createRequire(import.meta.url).resolve('yaml'), text, options: YAML_OPTIONS, maxErrors } });
    let settled = false;
    const settle = (done: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', abort);
      done();
    };
    const abort = (): void => settle(() => (void worker.terminate(), reject(signal?.reason)));
    signal?.addEventListener('abort', abort, { once: true });
    worker.once('message', (m: YamlParse) => settle(() => resolve(m)));
    // A worker that dies (out of memory, a library bug) fails this parse, not the process.
    worker.once('error', (err) => settle(() => reject(new Error(`YAML parse failed: ${err.message}`))));
    worker.once('exit', (code) => settle(() => reject(new Error(`YAML parse failed: its worker exited with code ${code}`))));
  });
}
