/**
 * Stopping fulcrum does not wait on the admin port's clients. A request in flight when the stop
 * began is answered, and its keep-alive connection then closed: Node's server.close() closes only
 * the connections idle at that moment, so one that went idle just after kept the stop waiting for
 * the keep-alive timeout (72 s), past a pod's grace period (a scrape in flight at SIGTERM did it).
 * A client that never finishes its request is cut after ADMIN_DRAIN_MS.
 */
import { connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { ADMIN_DRAIN_MS } from '../../src/admin/app.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { scaled, waitFor } from '../support/wait.js';

let dir: string | undefined;
let fulcrum: Fulcrum | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await fulcrum?.stop();
  fulcrum = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function started(): Promise<Fulcrum> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-admin-stop-'));
  const configPath = path.join(dir, 'fulcrum.yaml');
  await writeFile(configPath, 'clusters: [{ name: web, endpoints: [{ address: 127.0.0.1, port: 8080 }] }]\n');
  fulcrum = await startFulcrum({ configPath, dataDir: dir, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
  return fulcrum;
}

function open(port: number): Promise<{ socket: Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, received: () => text }));
    socket.on('data', (b: Buffer) => (text += b.toString()));
    socket.on('error', reject);
    sockets.push(socket);
  });
}

/** How long `f.stop()` takes, and whether it finished within `withinMs`. */
async function timedStop(f: Fulcrum, withinMs: number): Promise<{ ms: number; done: boolean }> {
  const t0 = performance.now();
  const done = await Promise.race([f.stop().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), withinMs).unref())]);
  return { ms: performance.now() - t0, done };
}

it('answers a request in flight at the stop, then closes its keep-alive connection instead of waiting it out', async () => {
  const f = await started();
  const { socket, received } = await open(f.adminPort);
  // A report whose body is not sent yet: in flight when the stop begins (the server's 100 Continue
  // says it has read the headers).
  const body = JSON.stringify({ samples: [{ cluster: 'web', endpoint: '127.0.0.1:8080', cpu: 0.5 }] });
  socket.write(`POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`);
  await waitFor(() => received().includes('100 Continue'), { what: 'the server to read the request headers' });
  const stopping = timedStop(f, scaled(20_000));
  socket.write(body);
  await waitFor(() => /HTTP\/1\.1 [2-5]\d\d (?!Continue)/.test(received()), { what: 'the answer to the request in flight' });
  expect(received()).toMatch(/HTTP\/1\.1 200 OK/);
  const { ms, done } = await stopping;
  expect(done, `stop took ${Math.round(ms)} ms`).toBe(true);
  fulcrum = undefined;
}, scaled(60_000));

it('cuts a client that never finishes its request after the drain time, not the request timeout', async () => {
  const f = await started();
  const { socket } = await open(f.adminPort);
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const { ms, done } = await timedStop(f, ADMIN_DRAIN_MS + scaled(10_000));
  expect(done, `stop took ${Math.round(ms)} ms`).toBe(true);
  fulcrum = undefined;
}, scaled(60_000));
