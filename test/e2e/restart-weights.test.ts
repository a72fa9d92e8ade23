import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { waitFor, scaled } from '../support/wait.js';

/** The last published weights survive a restart, so traffic does not slosh back to static. */

let dir: string | undefined;
let running: Fulcrum | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('resumes from the weights published before the restart, not from static ones', async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-restart-weights-'));
  const configPath = join(dir, 'fulcrum.yaml');
  const endpoints = ['127.0.0.1:7001', '127.0.0.1:7002'];
  await writeFile(
    configPath,
    YAML.stringify({
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid' },
          endpoints: endpoints.map((e) => ({ address: '127.0.0.1', port: Number(e.split(':')[1]), weight: 1 })),
        },
      ],
    }),
  );
  const start = (): Promise<Fulcrum> =>
    startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', dataDir: join(dir as string, 'data'), engineTickMs: 100, logger: pino({ level: 'silent' }) });

  running = await start();
  const first = running;
  const feed = setInterval(() => {
    first.signals.ingest({ reporter: 't', samples: [
      { cluster: 'web', endpoint: endpoints[0], time: Date.now(), cpu: 0.9 },
      { cluster: 'web', endpoint: endpoints[1], time: Date.now(), cpu: 0.3 },
    ] });
  }, 100);
  try {
    await waitFor(
      () => {
        const w = first.adaptive.current().get('web');
        const pair = endpoints.map((e) => w?.get(e)?.weight ?? 0);
        return (pair[1] ?? 0) / Math.max(1, pair[0] ?? 0) > 3 && pair;
      },
      { what: 'weights diverge under reported load', timeoutMs: 20_000 },
    );
  } finally {
    clearInterval(feed);
  }
  // Let the store hold what was last published (saved on every tick that publishes).
  await waitFor(() => {
    const saved = first.store.loadWeights().get('web');
    const pair = endpoints.map((e) => saved?.get(e) ?? 0);
    return (pair[1] ?? 0) / Math.max(1, pair[0] ?? 0) > 3;
  }, { what: 'weights persisted' });
  const persisted = first.store.loadWeights().get('web');
  await first.stop();

  running = await start();
  // Right after the start, with no new reports, the published weights are the persisted ones.
  const resumed = running.adaptive.current().get('web');
  const pair = endpoints.map((e) => resumed?.get(e)?.weight ?? 0);
  expect(pair[1] ?? 0).toBeGreaterThan(pair[0] ?? 0);
  const ratio = (pair[1] ?? 0) / Math.max(1, pair[0] ?? 0);
  const persistedRatio = (persisted?.get(endpoints[1] ?? '') ?? 0) / Math.max(1, persisted?.get(endpoints[0] ?? '') ?? 0);
  expect(Math.abs(ratio / persistedRatio - 1)).toBeLessThan(0.05);
}, scaled(60_000));
