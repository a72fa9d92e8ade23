import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { envoyType } from '../../src/xds/envoy-api.js';
import { fulcrumCommand } from '../support/fulcrum-command.js';
import { scaled, waitFor } from '../support/wait.js';

const repo = new URL('../../', import.meta.url).pathname;

/**
 * The command compiles src/ through tsx and loads Envoy's whole API tree before it listens: a
 * few seconds on a quiet machine, 26 s seen at load 13 on two cores. The deadlines are for
 * "it never starts", not for how fast it starts.
 */
const START_MS = 90_000;
const TEST_MS = 120_000;

interface Run {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  exited: Promise<number | null>;
  /** The exit code once the process has exited. */
  exitCode: () => number | null | undefined;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [...fulcrumCommand(), ...args], { cwd: repo, stdio: 'pipe' });
  let out = '';
  let exitCode: number | null | undefined;
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  return { child, out: () => out, exited, exitCode: () => exitCode };
}

describe('fulcrum command', () => {
  let dir: string | undefined;
  let proc: ReturnType<typeof run> | undefined;
  afterEach(async () => {
    proc?.child.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses to start on an invalid config, naming the file, path and reason', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-cli-'));
    const config = join(dir, 'bad.yaml');
    await writeFile(config, 'clusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 0 }] }]\n');
    proc = run(['--config', config, '--xds-port', '0', '--data-dir', join(dir, 'data')]);
    expect(await proc.exited).toBe(1);
    expect(proc.out()).toContain(`${config}: /clusters/0/endpoints/0/port: Expected integer to be greater or equal to 1`);
  }, scaled(TEST_MS));

  it('drains ADS streams and exits 0 on SIGTERM', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-cli-'));
    const config = join(dir, 'fulcrum.yaml');
    await writeFile(config, 'clusters: [{ name: a }]\n');
    proc = run(['--config', config, '--xds-port', '0', '--data-dir', join(dir, 'data')]);
    const p = proc;
    const port = await waitFor(
      ({ abort }) => {
        const code = p.exitCode();
        if (code !== undefined) abort(new Error(`fulcrum exited (${code}) before listening:\n${p.out()}`));
        return /"port":(\d+),"msg":"xDS server listening"/.exec(p.out())?.[1];
      },
      { what: 'the "xDS server listening" log line', timeoutMs: START_MS, intervalMs: 100 },
    );

    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const Req = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
    const call = client.makeBidiStreamRequest(
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      (o: Record<string, unknown>) => Buffer.from(Req.encode(Req.fromObject(o)).finish()),
      (b: Buffer) => b,
    );
    const responses: Buffer[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', (b: Buffer) => responses.push(b));
    call.on('error', () => undefined);
    call.write({ node: { id: 'n1' }, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' });
    await waitFor(() => responses.length > 0, { what: 'first CDS response' });

    p.child.kill('SIGTERM');
    const status = await ended;
    expect(status.code).toBe(grpc.status.OK);
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('"signal":"SIGTERM"');
    expect(p.out()).toContain('"msg":"stopped"');
    client.close();
  }, scaled(TEST_MS));
});
