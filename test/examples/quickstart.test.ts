import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { movedTowardCapacity } from '../../examples/quickstart/fleet.js';
import { describeEnvoy } from '../support/envoy.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `npm run quickstart` in its short, self-checking mode: real fulcrum, Envoy, backends, load. */
function runQuickstart(args: readonly string[], input: (write: (s: string) => void) => void): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/quickstart/quickstart.ts', ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
    input((s) => child.stdin.write(s));
  });
}

test('movedTowardCapacity: the largest backend above an equal share and the smallest below it', () => {
  expect(movedTowardCapacity([50, 100, 200], [0.13, 0.3, 0.57])).toBe(true);
  expect(movedTowardCapacity([50, 100, 200], [0.33, 0.33, 0.34])).toBe(false);
  expect(movedTowardCapacity([50, 100, 200], [0.57, 0.3, 0.13])).toBe(false);
  expect(movedTowardCapacity([100, 100], [0.5, 0.5])).toBe(false);
});

describeEnvoy('npm run quickstart', () => {
  test('in one command the weights move toward the backends with more capacity, and a key halves a backend', async () => {
    // Wall-clock seconds of engine ticks, not CPU: the weights converge in ~10 s even at load 17.
    const duration = 45;
    const { code, out } = await runQuickstart(
      ['--duration', String(duration), '--check', '--xds-port', '0', '--admin-port', '0', '--listener-port', '0', '--envoy-admin-port', '0'],
      (write) => {
        // An unknown key does nothing; '1' halves the smallest backend (2 → 1 worker), which the
        // check's capacities then include: the smallest stays the smallest.
        write('x\n1\n');
      },
    );
    expect(out, out).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    expect(out, out).toMatch(/b1: capacity halved to 1 workers/);
    expect(out, out).toContain('check: weights moved toward the backends with more capacity');
    expect(code, out).toBe(0);
  });
}, { timeout: 240_000 });
