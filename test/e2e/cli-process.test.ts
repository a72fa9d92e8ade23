import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { envoyType } from '../../src/xds/envoy-api.js';
import { fulcrumCommand } from '../support/fulcrum-command.js';
import { scaled, waitFor } from '../support/wait.js';

const repo = new URL('../../', import.meta.url).pathname;

/** The command compiles src/ through tsx: deadlines are for "it never starts", not for speed (see cli.test.ts). */
const START_MS = 90_000;
const TEST_MS = 240_000;

interface Proc {
  readonly child: ChildProcessWithoutNullStreams;
  out(): string;
  readonly exited: Promise<number | null>;
}

const procs: Proc[] = [];

function spawnProc(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(command, args, { cwd: repo, stdio: 'pipe', env: { ...process.env, ...env } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const proc = { child, out: () => out, exited };
  procs.push(proc);
  return proc;
}

const fulcrum = (args: string[], env: NodeJS.ProcessEnv = {}): Proc => spawnProc(process.execPath, [...fulcrumCommand(), ...args], env);

/** The 'fulcrum started' JSON line (stdout is a pipe, so logs are JSON). */
async function started(p: Proc): Promise<{ pid: number; xdsPort: number; adminPort: number; dataDir: string }> {
  return waitFor(
    ({ abort }) => {
      const line = p.out().split('\n').find((l) => l.includes('"msg":"fulcrum started"'));
      if (line) return JSON.parse(line) as { pid: number; xdsPort: number; adminPort: number; dataDir: string };
      if (p.child.exitCode !== null) abort(new Error(`fulcrum exited (${p.child.exitCode}) before starting:\n${p.out()}`));
      return undefined;
    },
    { what: 'the "fulcrum started" log line', timeoutMs: START_MS, intervalMs: 100 },
  );
}

const CSDS_FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';
const ClientStatusRequest = envoyType('envoy.service.status.v3.ClientStatusRequest');

/** FetchClientStatus with a node_id safe_regex matcher: its gRPC status code and details. */
async function csdsRegexFetch(xdsPort: number): Promise<{ code: grpc.status; details: string }> {
  const client = new grpc.Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure());
  const req = Buffer.from(ClientStatusRequest.encode(ClientStatusRequest.fromObject({ node_matchers: [{ node_id: { safe_regex: { regex: 'edge-[0-9]+' } } }] })).finish());
  try {
    return await new Promise((resolve) =>
      client.makeUnaryRequest(CSDS_FETCH, (b: Buffer) => b, (b: Buffer) => b, req, (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' })),
    );
  } finally {
    client.close();
  }
}

/** The warning a node started without the flag logs when a safe_regex turns the engine on (node-matchers.ts). */
const FALLBACK = 'linear-time regex engine was turned on at the first CSDS safe_regex matcher';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the fulcrum process at the terminal', () => {
  let dir: string | undefined;
  let blocker: Server | undefined;
  afterEach(async () => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    blocker?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('rejects a bad flag value before anything starts: exit 2, the flag named', async () => {
    const p = fulcrum(['--xds-port', 'abc', '--config', 'examples/fulcrum.yaml']);
    expect(await p.exited).toBe(2);
    expect(p.out()).toContain('--xds-port: expected a port number 0-65535, got "abc"');
    expect(p.out()).not.toContain('listening');
    const level = fulcrum(['--log-level', 'loud']);
    expect(await level.exited).toBe(2);
    expect(level.out()).toContain('--log-level: expected one of trace, debug, info');
  }, scaled(TEST_MS));

  it('--version and --help answer without starting; help lists every flag, env var and default', async () => {
    const version = fulcrum(['--version']);
    expect(await version.exited).toBe(0);
    expect(version.out()).toMatch(/^fulcrum \d+\.\d+\.\d+\n$/);
    const help = fulcrum(['--help']);
    expect(await help.exited).toBe(0);
    for (const text of ['--config', '--xds-port', '--admin-port', '--data-dir', '--log-format', '--log-level', 'FULCRUM_DATA_DIR', 'FULCRUM_LOG_LEVEL', 'FULCRUM_ADMIN_TOKEN', 'default: ./data', 'proxies', 'config-dump']) {
      expect(help.out()).toContain(text);
    }
  }, scaled(TEST_MS));

  it('logs a start line, locks the data directory, names a port in use, and takes over a stale lock', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-proc-'));
    const config = join(dir, 'fulcrum.yaml');
    const data = join(dir, 'data');
    await writeFile(config, 'clusters: [{ name: a }]\n');
    const first = fulcrum(['--config', config, '--xds-port', '0', '--data-dir', data], { FULCRUM_LOG_LEVEL: 'debug' });
    const line = await started(first);
    expect(line).toMatchObject({ pid: first.child.pid, dataDir: data });
    expect(first.out()).toContain(`"config":"${config}"`);
    expect(first.out()).toMatch(/"version":"\d+\.\d+\.\d+"/);
    // FULCRUM_LOG_LEVEL=debug shows the per-push line that is hidden at info.
    expect(first.out()).toContain('"msg":"snapshot published"');

    const second = fulcrum(['--config', config, '--xds-port', '0', '--data-dir', data]);
    expect(await second.exited).toBe(1);
    expect(second.out()).toContain(`data directory ${data} is in use by another fulcrum (pid ${line.pid}`);

    const third = fulcrum(['--config', config, '--xds-port', String(line.xdsPort), '--data-dir', join(dir, 'other')]);
    expect(await third.exited).toBe(1);
    expect(third.out()).toContain(`xDS gRPC server cannot listen on 127.0.0.1:${line.xdsPort}: EADDRINUSE`);

    blocker = createServer();
    const adminTaken = await new Promise<number>((resolve) => blocker?.listen(0, '127.0.0.1', () => resolve((blocker?.address() as { port: number }).port)));
    const fourth = fulcrum(['--config', config, '--xds-port', '0', '--admin-port', String(adminTaken), '--data-dir', join(dir, 'fourth')]);
    expect(await fourth.exited).toBe(1);
    expect(fourth.out()).toContain(`admin server cannot listen on 127.0.0.1:${adminTaken}: EADDRINUSE`);

    first.child.kill('SIGKILL');
    await first.exited;
    const fifth = fulcrum(['--config', config, '--xds-port', '0', '--data-dir', data]);
    await started(fifth);
    expect(fifth.out()).toContain(`"stalePid":${line.pid}`);
    // At info: one line per server, not fastify's "Server listening at" as well; no per-push lines.
    expect(fifth.out().match(/listening/gi)).toHaveLength(2);
    expect(fifth.out()).not.toContain('snapshot published');
    fifth.child.kill('SIGTERM');
    expect(await fifth.exited).toBe(0);
  }, scaled(TEST_MS));

  it('a served process hands freed native memory back once its loop is quiet, unless --trim-native-memory off', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-proc-'));
    const config = join(dir, 'fulcrum.yaml');
    await writeFile(config, 'clusters: [{ name: a }]\n');
    const on = fulcrum(['--config', config, '--xds-port', '0', '--data-dir', join(dir, 'on')], { FULCRUM_LOG_LEVEL: 'debug' });
    const off = fulcrum(['--config', config, '--xds-port', '0', '--data-dir', join(dir, 'off'), '--trim-native-memory', 'off']);
    const [a, b] = await Promise.all([started(on), started(off)]);
    const metrics = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    // The first quiet check trims (start-up's own garbage): logged at debug and counted.
    await waitFor(() => on.out().includes('"msg":"native memory trimmed"'), { what: 'a trim logged', timeoutMs: 60_000, intervalMs: 250 });
    expect(on.out()).toMatch(/"returnedBytes":-?\d+,"ms":[\d.]+,"reason":"interval","nextIntervalMs":\d+,"msg":"native memory trimmed"/);
    expect(await metrics(a.adminPort)).toMatch(/^fulcrum_native_memory_trims_total\{reason="interval"\} [1-9]/m);
    const offMetrics = await metrics(b.adminPort);
    expect(offMetrics).not.toContain('fulcrum_native_memory_trims_total');
    expect(offMetrics).toContain('fulcrum_build_info');
    on.child.kill('SIGTERM');
    off.child.kill('SIGTERM');
    expect(await Promise.all([on.exited, off.exited])).toEqual([0, 0]);
  }, scaled(TEST_MS));

  // Node documents V8 flags set after start as unsupported; node-matchers.ts set this one at the first regex.
  it('npm start turns V8\'s linear-time regex engine on at start: a CSDS safe_regex matcher is served, nothing falls back; the bare bin falls back once, with a warning', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-proc-'));
    const build = spawnProc(process.execPath, ['scripts/build-if-stale.mjs']);
    expect(await build.exited, build.out()).toBe(0);
    const npm = spawnProc('npm', ['start', '--', '--xds-port', '0', '--admin-port', '0', '--data-dir', join(dir, 'npm')], { FULCRUM_LOG_FORMAT: 'json' });
    const line = await started(npm);
    expect((await readFile(`/proc/${line.pid}/cmdline`, 'utf8')).split('\0')).toContain('--enable-experimental-regexp-engine');
    expect(await csdsRegexFetch(line.xdsPort)).toEqual({ code: grpc.status.OK, details: '' });
    expect(await csdsRegexFetch(line.xdsPort)).toEqual({ code: grpc.status.OK, details: '' });
    expect(npm.out()).not.toContain(FALLBACK);

    // Started without the flag (the bare compiled bin): still served, the fallback said once in the log.
    const bare = spawnProc(process.execPath, ['dist/main.js', '--config', 'examples/fulcrum.yaml', '--xds-port', '0', '--admin-port', '0', '--data-dir', join(dir, 'bare')], { FULCRUM_LOG_FORMAT: 'json' });
    const bareLine = await started(bare);
    expect(await csdsRegexFetch(bareLine.xdsPort)).toEqual({ code: grpc.status.OK, details: '' });
    expect(await csdsRegexFetch(bareLine.xdsPort)).toEqual({ code: grpc.status.OK, details: '' });
    await waitFor(() => bare.out().includes(FALLBACK), { what: 'the fallback warning logged', timeoutMs: scaled(10_000) });
    expect(bare.out().split(FALLBACK)).toHaveLength(2);
    expect(bare.out()).toMatch(new RegExp(`"level":40,[^\n]*${FALLBACK}`));
    npm.child.kill('SIGTERM');
    bare.child.kill('SIGTERM');
    await Promise.all([npm.exited, bare.exited]);
    await waitFor(() => !alive(line.pid), { what: `fulcrum's node process ${line.pid} to exit after SIGTERM to npm`, timeoutMs: scaled(30_000) });
  }, scaled(TEST_MS));

  it('npm start runs the compiled fulcrum with its V8 settings and forwards SIGTERM: the node process it ran stops and exits', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-proc-'));
    // npm start builds dist/ first when it is missing or stale (a minute or more on a loaded
    // machine): done here on its own, so the start below is timed as a start.
    const build = spawnProc(process.execPath, ['scripts/build-if-stale.mjs']);
    expect(await build.exited, build.out()).toBe(0);
    const npm = spawnProc('npm', ['start', '--', '--xds-port', '0', '--data-dir', join(dir, 'data')], { FULCRUM_LOG_FORMAT: 'json' });
    const line = await started(npm);
    expect(line.pid).not.toBe(npm.child.pid);
    // Not tsx: dist/main.js, with the young generation capped (RSS at rest) and one V8 helper
    // thread (waits behind big writes: bench/RESULTS.md "engine18").
    const argv = (await readFile(`/proc/${line.pid}/cmdline`, 'utf8')).split('\0');
    expect(argv).toEqual(expect.arrayContaining(['--max-semi-space-size=4', '--v8-pool-size=1', 'dist/main.js']));
    expect(argv).not.toContain('tsx');
    npm.child.kill('SIGTERM');
    await npm.exited;
    await waitFor(() => !alive(line.pid), { what: `fulcrum's node process ${line.pid} to exit after SIGTERM to npm`, timeoutMs: 30_000 });
    expect(npm.out()).toContain('"msg":"stopped"');
  }, scaled(TEST_MS));
});
