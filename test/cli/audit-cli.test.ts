/**
 * `fulcrum audit` against a running fulcrum with a named admin token: the table shows who
 * (token:<name>) did what, newest first; -o json is the API's page; a bad --limit is a usage error.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';

const SECRET = 'c0ffee00c0ffee00c0ffee00';

describe('fulcrum audit', () => {
  let dir = '';
  let fulcrum: Fulcrum;
  const cli = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runCli(argv, {
      env: { FULCRUM_ADMIN_URL: `http://127.0.0.1:${fulcrum.adminPort}`, FULCRUM_ADMIN_TOKEN: `release-bot:${SECRET}` },
      write: (t) => (out += t),
      error: (t) => (err += t),
      serve: () => Promise.reject(new Error('serve must not be called')),
    });
    return { code, out, err };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-audit-cli-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, 'clusters: [{ name: web, endpoints: [{ address: 10.0.0.1, port: 80 }] }]\n');
    fulcrum = await startFulcrum({
      configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }),
      auth: { adminTokens: [`release-bot:${SECRET}`], readTokens: [] },
    });
    const res = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/v1/clusters/web/endpoints/10.0.0.1/80/drain`, { method: 'POST', headers: { authorization: `Bearer ${SECRET}` } });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints who did what, newest first, with the token\'s name and never its secret', async () => {
    const { code, out } = await cli(['audit']);
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+AT\s+ACTOR\s+ACTION\s+KIND\s+NAME\s+CHANGED$/);
    expect(lines[1]).toMatch(/token:release-bot\s+drain\s+endpoint\s+web\/10\.0\.0\.1:80\s+state$/);
    expect(lines[2]).toMatch(/config-file\s+create\s+cluster\s+web\s+-$/);
    expect(out).not.toContain(SECRET);
  });

  it('-o json is the API\'s page; --limit is checked', async () => {
    const json = await cli(['audit', '-o', 'json', '--limit', '1']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ entries: [{ actor: 'token:release-bot', action: 'drain', cluster: 'web', endpoint: '10.0.0.1:80' }], nextBefore: expect.any(Number) });
    const bad = await cli(['audit', '--limit', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--limit must be an integer from 1 to 1000, got "lots"');
  });
});
