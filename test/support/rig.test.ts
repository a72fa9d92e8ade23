/** The rig's lifecycle without Envoy: what it starts, it stops, also when starting fails half-way. */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startRig, type Closable } from './rig.js';
import { waitFor } from './wait.js';

function fakeBackends(): Closable & { closed: number } {
  const b = {
    closed: 0,
    async close() {
      b.closed++;
    },
  };
  return b;
}

describe('startRig', () => {
  it('when fulcrum refuses the config, closes the backends and removes its directory before rethrowing', async () => {
    const backends = fakeBackends();
    let dir = '';
    const failed = await startRig({
      name: 'rig-fails',
      backends: async () => backends,
      config: (ctx) => {
        dir = ctx.dir;
        return { clusters: [{ name: 'a', endpoints: [{ address: '10.0.0.1', port: 0 }] }] };
      },
      envoy: false,
    }).catch((err: unknown) => err);
    expect(String(failed)).toMatch(/port/);
    expect(backends.closed).toBe(1);
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
  });

  it('restarts fulcrum on the same xDS port, applies config edits, and stops everything once', async () => {
    const backends = fakeBackends();
    const rig = await startRig({
      name: 'rig-lifecycle',
      backends: async () => backends,
      config: () => ({ clusters: [{ name: 'a', endpoints: [{ address: '10.0.0.1', port: 80 }] }] }),
      envoy: false,
    });
    const hooks: string[] = [];
    rig.onStop(() => void hooks.push('first'));
    rig.onStop(() => void hooks.push('second'));
    expect(() => rig.envoy).toThrow(/no Envoy/);
    expect(rig.url).toBe(`http://127.0.0.1:${rig.listenerPort}/`);

    const port = rig.fulcrum.xdsPort;
    let downSeen = false;
    const restarted = await rig.restartFulcrum(async () => {
      downSeen = (await fetch(`http://127.0.0.1:${port}`).catch(() => 'refused')) === 'refused';
    });
    expect(downSeen).toBe(true);
    expect(restarted.xdsPort).toBe(port);
    expect(rig.fulcrum).toBe(restarted);

    await rig.writeConfig({ clusters: [{ name: 'b', endpoints: [{ address: '10.0.0.2', port: 80 }] }] });
    await waitFor(() => rig.fulcrum.store.getCluster('b') !== undefined, { what: 'cluster b from the edited file' });

    await Promise.all([rig.stop(), rig.stop()]);
    expect(hooks).toEqual(['second', 'first']);
    expect(backends.closed).toBe(1);
    expect(existsSync(rig.dir)).toBe(false);
  });
});
