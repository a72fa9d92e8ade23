/**
 * An outside judge of the admin API's OpenAPI document: Schemathesis (PyPI `schemathesis`, pinned
 * in .ci/run) reads /openapi.json of a running fulcrum, generates requests from it (examples,
 * coverage of every boundary and wrong method, random fuzzing) and runs all its stateless checks
 * on the answers: no 5xx, only documented statuses, content types and response bodies, schema-
 * violating requests refused, schema-valid ones accepted, 405 with Allow for undeclared methods,
 * 401 without credentials where security is declared, and none where it is not.
 *
 * Two runs, side by side: a fulcrum with tokens, judged with an admin token (its document declares
 * bearer security on every /v1 route), and a fulcrum without tokens (its document declares none).
 * Bounded by examples per operation and a deadline; the seed is printed so a failure replays
 * (FULCRUM_SCHEMATHESIS_SEED). The exceptions Schemathesis is told about are in schemathesis.toml.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AuthConfig } from '../../src/admin/auth.js';
import type { Fulcrum } from '../../src/main.js';
import { describeRequiring } from '../support/requires.js';
import { scaled } from '../support/timing.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';

const BIN = process.env.SCHEMATHESIS_BIN ?? 'schemathesis';
const CONFIG = fileURLToPath(new URL('./schemathesis.toml', import.meta.url));
const ADMIN = 'schemathesis-admin-token';
const EXAMPLES = 3;
const DEADLINE_MS = scaled(150_000);

function findSchemathesis(): { ok: boolean; detail: string } {
  const r = spawnSync(BIN, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return { ok: true, detail: r.stdout.trim() };
  return { ok: false, detail: `${BIN} --version: ${r.error?.message ?? r.stderr.trim()} (pip install schemathesis, see .ci/run)` };
}

const DOC = {
  clusters: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] }],
  listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'web' }] }],
};

interface Run {
  readonly code: number | null;
  readonly output: string;
}

/** Runs Schemathesis against `port` (in `cwd`, where it keeps its cache); resolves with its exit code and output (killed at the deadline). */
function schemathesis(port: number, seed: number, headers: readonly string[], cwd: string): Promise<Run> {
  const args = [
    '--config-file',
    CONFIG,
    'run',
    `http://127.0.0.1:${port}/openapi.json`,
    '--phases',
    'examples,coverage,fuzzing',
    '--checks',
    'all',
    '--max-examples',
    String(EXAMPLES),
    '--seed',
    String(seed),
    '--workers',
    '1',
    '--request-timeout',
    String(scaled(10)),
    ...headers.flatMap((h) => ['--header', h]),
  ];
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      console.log(`schemathesis on :${port} exited ${String(code)} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
      resolve({ code, output });
    });
  });
}

/** The report's failure sections and summary, enough to act on without the whole log. */
const digest = (run: Run): string => run.output.slice(run.output.indexOf('FAILURES') >= 0 ? run.output.indexOf('FAILURES') : -4000).slice(0, 12_000);

describeRequiring(
  'Schemathesis (pip install schemathesis)',
  findSchemathesis(),
  'Schemathesis judges /openapi.json of a running fulcrum',
  () => {
    const seed = Number(process.env.FULCRUM_SCHEMATHESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    let dir: string;
    const running: Fulcrum[] = [];

    async function start(auth: AuthConfig): Promise<Fulcrum> {
      const configPath = join(dir, `fulcrum-${running.length}.yaml`);
      await writeFile(configPath, stringify(DOC));
      const f = await startLoopbackFulcrum(configPath, { auth });
      running.push(f);
      return f;
    }

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-schemathesis-'));
    });

    afterAll(async () => {
      await Promise.all(running.map((f) => f.stop()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('finds no failure with an admin token (tokens configured) nor without tokens', async () => {
      const secured = await start({ adminTokens: [ADMIN], readTokens: ['schemathesis-read-token'], reportTokens: ['schemathesis-report-token'] });
      const open = await start({ adminTokens: [], readTokens: [], reportTokens: [] });
      console.log(`schemathesis seed ${seed} (FULCRUM_SCHEMATHESIS_SEED=${seed} replays it)`);
      const [withToken, withoutTokens] = await Promise.all([
        schemathesis(secured.adminPort, seed, [`Authorization: Bearer ${ADMIN}`], dir),
        schemathesis(open.adminPort, seed, [], dir),
      ]);
      for (const [name, run] of [
        ['admin token', withToken],
        ['no tokens', withoutTokens],
      ] as const) {
        expect(run.code, `${name} (seed ${seed}):\n${digest(run)}`).toBe(0);
        // It tested something: every operation of the document, with generated cases.
        expect(run.output, name).toMatch(/Tested: (\d+)/);
        expect(Number(/Tested: (\d+)/.exec(run.output)?.[1]), name).toBeGreaterThanOrEqual(25);
        expect(run.output, name).not.toMatch(/\d+ failures?/);
      }
    });
  },
  { timeout: 200_000 },
);
