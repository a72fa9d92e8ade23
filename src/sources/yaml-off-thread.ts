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
 * The worker runs the very call parseYaml runs inline (config-file.ts), with the same options, and
 * sends back the same value or the same error lines.
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

/** parseYaml, on a worker thread when `text` is longer than `offThreadChars`. */
export async function parseYamlOffThread(text: string, maxErrors: number, offThreadChars = OFF_THREAD_CHARS): Promise<YamlParse> {
  if (text.length <= offThreadChars) return parseYaml(text, maxErrors);
  return new Promise<YamlParse>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { yaml: createRequire(import.meta.url).resolve('yaml'), text, options: YAML_OPTIONS, maxErrors } });
    let settled = false;
    worker.once('message', (m: YamlParse) => {
      settled = true;
      resolve(m);
    });
    // A worker that dies (out of memory, a library bug) fails this parse, not the process.
    worker.once('error', (err) => {
      settled = true;
      reject(new Error(`YAML parse failed: ${err.message}`));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`YAML parse failed: its worker exited with code ${code}`));
    });
  });
}
