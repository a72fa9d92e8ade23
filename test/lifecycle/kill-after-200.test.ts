/**
 * "An operator's change is durable once the API says 200", proven on the real process: a fulcrum
 * is spawned, changed through its admin API (small writes, a sliced cluster write, a bulk
 * endpoint write, a sliced delete, an operator drain), SIGKILLed the moment the last 200 arrives,
 * started again on the same data directory, and every change is read back.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrumProcess, type FulcrumProcess } from '../support/fulcrum-process.js';
import { scaled } from '../support/timing.js';

const START_MS = 90_000;

/** `n` endpoints 10.<a>.<b>.<c>:8080, weight from `weight(i)`. */
function endpoints(n: number, weight: (i: number) => number, offset = 0): Array<{ address: string; port: number; weight: number }> {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    return { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight: weight(i) };
  });
}

async function call(f: FulcrumProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${f.adminPort}${path}`, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function ok(f: FulcrumProcess, method: string, path: string, body?: unknown): Promise<void> {
  const { status, json } = await call(f, method, path, body);
  expect([200, 201], `${method} ${path}: ${JSON.stringify(json).slice(0, 400)}`).toContain(status);
}

/** SIGKILL, waited for: nothing after the last answer gets a chance to run. */
async function kill(f: FulcrumProcess): Promise<void> {
  f.proc.child.kill('SIGKILL');
  await f.stop();
}

type EndpointView = { address: string; weight: number; state?: string };

describe('SIGKILL right after a 200', () => {
  let dir: string | undefined;
  const running: FulcrumProcess[] = [];
  afterEach(async () => {
    for (const f of running.splice(0)) await f.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (config: string, dataDir: string): Promise<FulcrumProcess> => {
    const f = await startFulcrumProcess({ config, dataDir, startMs: START_MS });
    running.push(f);
    return f;
  };

  it('every answered write is there after a restart on the same data directory: small, sliced, bulk, delete, drain', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-kill-'));
    const config = join(dir, 'fulcrum.yaml');
    const data = join(dir, 'data');
    await writeFile(config, 'clusters: [{ name: file-web, endpoints: [{ address: 10.9.0.1, port: 80 }] }]\n');
    const first = await start(config, data);

    await ok(first, 'PUT', '/v1/clusters/small', { endpoints: endpoints(3, (i) => i + 1) });
    await ok(first, 'PUT', '/v1/clusters/doomed', { endpoints: endpoints(1_500, () => 2) });
    await ok(first, 'PUT', '/v1/clusters/big', { endpoints: endpoints(2_500, (i) => (i % 7) + 1) });
    await ok(first, 'PUT', '/v1/clusters/bulk', { endpoints: endpoints(2, () => 1) });
    await ok(first, 'PUT', '/v1/clusters/bulk/endpoints', { mode: 'upsert', endpoints: endpoints(3_000, () => 5, 100) });
    await ok(first, 'DELETE', '/v1/clusters/doomed');
    await ok(first, 'PUT', '/v1/listeners/ingress', { address: '127.0.0.1', port: 10_000, routes: [{ prefix: '/', cluster: 'big' }] });
    await ok(first, 'POST', '/v1/clusters/file-web/endpoints/10.9.0.1/80/drain');
    await ok(first, 'PUT', '/v1/clusters/small/endpoints/10.0.0.0/8080', { weight: 42 });
    await kill(first);

    const second = await start(config, data);
    const small = await call(second, 'GET', '/v1/clusters/small/endpoints');
    expect((small.json.endpoints as EndpointView[]).map((e) => [e.address, e.weight])).toEqual([
      ['10.0.0.0', 42],
      ['10.0.0.1', 2],
      ['10.0.0.2', 3],
    ]);
    const big = await call(second, 'GET', '/v1/clusters/big/endpoints');
    expect(big.json.count).toBe(2_500);
    expect((big.json.endpoints as EndpointView[]).reduce((n, e) => n + e.weight, 0)).toBe(endpoints(2_500, (i) => (i % 7) + 1).reduce((n, e) => n + e.weight, 0));
    const bulk = await call(second, 'GET', '/v1/clusters/bulk/endpoints');
    expect(bulk.json.count).toBe(3_002);
    expect((await call(second, 'GET', '/v1/clusters/doomed')).status).toBe(404);
    expect((await call(second, 'GET', '/v1/listeners/ingress')).status).toBe(200);
    const drained = await call(second, 'GET', '/v1/clusters/file-web/endpoints/10.9.0.1/80');
    expect(drained.json.state).toBe('draining');
  }, scaled(240_000));
});
