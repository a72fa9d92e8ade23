import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from '../../src/admin/dashboard-page.js';
import { scaled, waitFor } from '../support/wait.js';
import { unreachableKubeConfig } from './unreachable-kube.js';

/**
 * What a start of the shipped build (dist/main.js, scripts/bundle.mjs) reads: a few bundle files
 * instead of hundreds of modules, and, as loaded-packages.test.ts checks for the sources, not the
 * parts a configuration does not use: their code sits in chunks of their own that stay unread.
 * dist/bundle-inputs.json says which sources each output file holds.
 */

const repo = new URL('../../', import.meta.url).pathname;

/** Reports every ES module the process loads (a load hook) and, at exit, every CommonJS file. */
const hook = `export async function load(url, context, next) {
  const result = await next(url, context);
  process.stderr.write('LOADED ' + url + '\\n');
  return result;
}`;
const preload = `import { register, createRequire } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
process.on('exit', () => { for (const f of Object.keys(createRequire(import.meta.url).cache)) process.stderr.write('LOADED file://' + f + '\\n'); });`;

interface Loaded {
  /** Output files of dist/ read (relative to dist/). */
  readonly outputs: string[];
  /** Packages read from node_modules. */
  readonly packages: Set<string>;
  /** The sources and package files inside the dist/ files read (bundle-inputs.json). */
  readonly inputs: string[];
}

/** Started and not yet exited: stopped after the tests whatever happened (a test's timeout included). */
const running = new Set<ChildProcess>();

async function build(): Promise<void> {
  const child = spawn(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: repo, stdio: 'pipe' });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  expect(await new Promise((resolve) => child.once('exit', resolve)), err).toBe(0);
}

/**
 * Starts dist/main.js on `config`, waits until it has started (and with `ready`, until /readyz
 * answers 200: not with an unreachable Kubernetes API), stops it, and lists what it read.
 */
async function loadedBy(config: string, dataDir: string, ready = true, visit?: (adminPort: number) => Promise<void>): Promise<Loaded> {
  const args = ['--import', `data:text/javascript,${encodeURIComponent(preload)}`, 'dist/main.js', '--config', config, '--xds-port', '0', '--admin-port', '0', '--data-dir', dataDir];
  const child = spawn(process.execPath, args, { cwd: repo, stdio: 'pipe' });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await waitFor(
      async ({ abort }) => {
        if (child.exitCode !== null) abort(new Error(`dist/main.js exited ${child.exitCode}:\n${out}\n${err}`));
        const port = /"adminPort":(\d+)/.exec(out)?.[1];
        if (port !== undefined && !ready) return true;
        return port !== undefined && (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false));
      },
      { what: `dist/main.js to ${ready ? 'be ready' : 'start'}`, timeoutMs: scaled(60_000), intervalMs: 50 },
    );
    const port = /"adminPort":(\d+)/.exec(out)?.[1];
    if (visit && port) await visit(Number(port));
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited, err).toBe(0);
  const files = [...err.matchAll(/^LOADED file:\/\/(\S+)$/gm)].map((m) => m[1] ?? '');
  const outputs = files.filter((f) => f.startsWith(`${repo}dist/`)).map((f) => f.slice(`${repo}dist/`.length));
  const packages = new Set(files.map((f) => /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((p): p is string => p !== undefined));
  const map = JSON.parse(readFileSync(`${repo}dist/bundle-inputs.json`, 'utf8')) as Record<string, string[]>;
  return { outputs, packages, inputs: outputs.flatMap((o) => map[o] ?? []) };
}

const holds = (inputs: string[], part: string): boolean => inputs.some((i) => i.includes(part));

describe('what a start of the bundle reads', () => {
  let dir = '';
  beforeAll(async () => {
    await build();
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-bundle-loads-'));
  }, scaled(300_000));
  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the embedded default: a few bundle files, only the native addons (better-sqlite3, koffi) from node_modules, no etcd, Kubernetes source, Swagger UI or pino-pretty', async () => {
    const served: string[] = [];
    const visit = async (port: number) => {
      for (const path of ['/', '/dashboard/dashboard.js', '/dashboard/dashboard.css']) served.push(await (await fetch(`http://127.0.0.1:${port}${path}`)).text());
    };
    const loaded = await loadedBy('examples/fulcrum.yaml', join(dir, 'embedded'), true, visit);
    // The dashboard's String.raw page, script and style, rewritten as escaped literals (bundle.mjs), serve the same text.
    expect(served).toEqual([DASHBOARD_HTML, DASHBOARD_JS, DASHBOARD_CSS]);
    // Latin-1 only: V8 holds the source one byte per character (a single other character doubles it).
    for (const output of loaded.outputs.filter((o) => o.endsWith('.js'))) {
      const wide = [...readFileSync(`${repo}dist/${output}`, 'utf8')].some((c) => c.charCodeAt(0) > 0xff);
      expect(wide, output).toBe(false);
    }
    expect(loaded.outputs).toContain('main.js');
    expect(loaded.outputs.filter((o) => o.endsWith('.js')).length).toBeLessThanOrEqual(10);
    // What serving needs came from the bundle, not from node_modules.
    for (const part of ['src/main.ts', 'node_modules/fastify/', 'node_modules/@grpc/grpc-js/', 'node_modules/protobufjs/', 'node_modules/@sinclair/typebox/']) {
      expect(holds(loaded.inputs, part), part).toBe(true);
    }
    expect([...loaded.packages].every((p) => ['better-sqlite3', 'bindings', 'file-uri-to-path', 'koffi'].includes(p)), [...loaded.packages].join(', ')).toBe(true);
    // The FFI the native-memory trimmer calls glibc through loads from node_modules beside the bundle.
    expect(loaded.packages.has('koffi')).toBe(true);
    // The mapping of Kubernetes objects is main.ts's own import; discovery (client, informers) is lazy.
    for (const lazy of ['src/catalog/store/etcd-store.ts', 'src/sources/kubernetes/discovery.ts', 'src/sources/kubernetes/informer.ts']) expect(holds(loaded.inputs, lazy), lazy).toBe(false);
    for (const lazy of ['etcd3', 'cockatiel', '@fastify/swagger-ui', '@fastify/static', 'pino-pretty']) expect(loaded.packages, lazy).not.toContain(lazy);
  }, scaled(120_000));

  it('warms the admin routes from the validators and serializers the build generated (scripts/generate-prebuilt.ts), compiling none', async () => {
    const args = ['dist/main.js', '--config', 'examples/fulcrum.yaml', '--xds-port', '0', '--admin-port', '0', '--data-dir', join(dir, 'warm')];
    const child = spawn(process.execPath, args, { cwd: repo, stdio: 'pipe' });
    running.add(child);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const line = await waitFor(
        ({ abort }) => {
          if (child.exitCode !== null) abort(new Error(`dist/main.js exited ${child.exitCode}:\n${out}`));
          return out.split('\n').find((l) => l.includes('admin schemas warmed'));
        },
        { what: 'the admin warm-up to end', timeoutMs: 60_000, intervalMs: 100 },
      );
      const { prebuilt } = JSON.parse(line) as { prebuilt: Record<'validator' | 'serializer', { prebuilt: number; missing: number }> };
      expect(prebuilt.validator.prebuilt).toBeGreaterThanOrEqual(10);
      expect(prebuilt.serializer.prebuilt).toBeGreaterThanOrEqual(10);
      expect(prebuilt.validator.missing + prebuilt.serializer.missing, 'schemas the build did not generate').toBe(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, scaled(120_000));

  it('with the Kubernetes source: its chunk is read, @kubernetes/client-node is in no output file', async () => {
    const config = await unreachableKubeConfig(dir);
    const loaded = await loadedBy(config, join(dir, 'kube'), false);
    expect(holds(loaded.inputs, 'src/sources/kubernetes/informer.ts')).toBe(true);
    const everything = Object.values(JSON.parse(readFileSync(`${repo}dist/bundle-inputs.json`, 'utf8')) as Record<string, string[]>).flat();
    expect(holds(everything, 'node_modules/@kubernetes/client-node/')).toBe(false);
    expect(loaded.packages).not.toContain('@kubernetes/client-node');
  }, scaled(120_000));
});
