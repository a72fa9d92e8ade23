/**
 * The README's "Admin API" commands, run as shown: its first sh block under that heading, against
 * a fulcrum started as it says (`FULCRUM_ADMIN_TOKEN=secret`: authFromEnv of that environment),
 * with only the admin address changed to the test's port. Every command must get a 2xx: an
 * operator who pastes them must not meet a 401 or a 400 the README does not mention.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authFromEnv } from '../../src/admin/auth.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';

const README = new URL('../../README.md', import.meta.url);

/** The commands of the first sh block after `heading`, continuation lines joined, comments kept (bash drops them). */
async function commandsUnder(heading: string): Promise<string[]> {
  const text = await readFile(README, 'utf8');
  const from = text.indexOf(`\n${heading}\n`);
  if (from < 0) throw new Error(`README has no "${heading}" heading`);
  const block = /```sh\n([\s\S]*?)```/.exec(text.slice(from))?.[1] ?? '';
  return block.replace(/\\\n\s*/g, ' ').split('\n').filter((l) => l.trim().startsWith('curl '));
}

describe('the README\'s Admin API commands', () => {
  let dir: string;
  let fulcrum: Fulcrum;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-readme-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, 'clusters: []\n');
    fulcrum = await startFulcrum({
      configPath,
      dataDir: join(dir, 'data'),
      xdsPort: 0,
      xdsAddress: '127.0.0.1',
      adminPort: 0,
      adminAddress: '127.0.0.1',
      logger: pino({ level: 'silent' }),
      auth: authFromEnv({ FULCRUM_ADMIN_TOKEN: 'secret' }),
    });
  });

  afterAll(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('each one answers 2xx, as shown', async () => {
    const commands = await commandsUnder('## Admin API');
    expect(commands.length).toBeGreaterThanOrEqual(8);
    for (const command of commands) {
      // The body, then the status on a line of its own; options first, so a trailing comment stays one.
      const run = command.replace(/^\s*curl /, `curl -w '\\n%{http_code}' `).replaceAll('localhost:8080', `127.0.0.1:${fulcrum.adminPort}`);
      // Asynchronously: the server answering runs in this process.
      const { stdout } = await promisify(execFile)('bash', ['-c', run], { encoding: 'utf8', timeout: 30_000 });
      const status = stdout.slice(stdout.lastIndexOf('\n') + 1);
      expect(status, `${command}\n→ ${stdout}`).toMatch(/^2\d\d$/);
    }
  });
});
