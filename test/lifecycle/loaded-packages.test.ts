import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scaled } from '../support/timing.js';
import { unreachableKubeConfig } from './unreachable-kube.js';

/** The npm package a loaded file belongs to (its innermost node_modules folder), if any. */
function packageOf(file: string): string | undefined {
  return /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1];
}

/** Every file a start on `config` loaded by the time it served. */
async function loadedFiles(config: string): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/lifecycle/loaded-packages-child.ts', config], { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, err).toBe(0);
  const required = JSON.parse(out.split('\n').find((l) => l.startsWith('[')) ?? '[]') as string[];
  const imported = [...err.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1] ?? '');
  return [...required, ...imported];
}

describe('what a start loads', () => {
  it('the embedded default (SQLite, no Kubernetes, JSON logs) loads neither etcd3, the Kubernetes client, pino-pretty nor the Swagger UI, and two Ajv copies', async () => {
    const files = await loadedFiles('examples/fulcrum.yaml');
    const packages = new Set(files.map(packageOf).filter((p): p is string => p !== undefined));
    // What serving needs is there: the listing sees both CommonJS and ES module packages.
    expect(packages).toContain('fastify');
    expect(packages).toContain('@grpc/grpc-js');
    expect(packages).toContain('@sinclair/typebox');
    expect(packages).toContain('@fastify/swagger');
    for (const lazy of ['etcd3', 'cockatiel', '@kubernetes/client-node', 'pino-pretty']) expect(packages, lazy).not.toContain(lazy);
    // Built on the first visit to /docs (src/admin/lazy-docs.ts), with the static file server under it.
    for (const lazy of ['@fastify/swagger-ui', '@fastify/static', 'glob']) expect(packages, lazy).not.toContain(lazy);
    // Two Ajv copies: fastify's validators' and fast-json-stringify's (imported with lazy-compilers.ts:
    // the first /readyz needs it, and the Warmer within a second of ready), no third.
    expect(files.filter((f) => f.endsWith('/ajv/dist/ajv.js'))).toHaveLength(2);
  }, scaled(120_000));

  it('with the Kubernetes source enabled: its own list/watch client, not @kubernetes/client-node (~60 MiB and ~1 s of CPU at start)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-loaded-k8s-'));
    try {
      const config = await unreachableKubeConfig(dir);
      const files = await loadedFiles(config);
      expect(files.some((f) => f.endsWith('/sources/kubernetes/informer.ts'))).toBe(true);
      const packages = new Set(files.map(packageOf).filter((p): p is string => p !== undefined));
      for (const heavy of ['@kubernetes/client-node', 'node-fetch', 'js-yaml', 'socks-proxy-agent', 'hpagent']) expect(packages, heavy).not.toContain(heavy);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, scaled(120_000));
});
