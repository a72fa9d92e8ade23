/**
 * Envoy's slow start (Cluster.slowStart) against a real Envoy: the typed policy is ACKed and shown
 * in config_dump, a host added to a serving cluster gets markedly less than its share while it is
 * in Envoy's window and its share afterwards, under ROUND_ROBIN and LEAST_REQUEST, and removing
 * slowStart is ACKed too. Static weights, so fulcrum's own newcomer rule (adaptive only) plays no part.
 */
import { expect, it } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { syncState } from '../../src/xds/proxy-status.js';
import { sendRequests, shares, startBackends, type Backends } from '../support/backends.js';
import { describeEnvoy, dumpActiveCluster } from '../support/envoy.js';
import { useRig } from '../support/rig.js';
import { waitFor } from '../support/wait.js';

/** Envoy's window. Long enough that a burst right after the join lands well inside it at load 10. */
const WINDOW_MS = 15_000;
/** How long after the join the first burst counts: under a quarter of the window (weight factor < 0.25). */
const EARLY_MS = 3_500;

interface Shape {
  readonly lbPolicy: 'ROUND_ROBIN' | 'LEAST_REQUEST';
  /** Backend indices in the cluster. */
  readonly members: readonly number[];
  readonly slowStart: boolean;
}

describeEnvoy(
  'Envoy slow start (slowStart) with a real Envoy',
  () => {
    const nodeId = 'envoy-slow-start';
    const config = (backends: Backends, listenerPort: number, shape: Shape): Record<string, unknown> => ({
      clusters: [
        {
          name: 'web',
          lbPolicy: shape.lbPolicy,
          ...(shape.slowStart ? { slowStart: { windowMs: WINDOW_MS, aggression: 1 } } : {}),
          endpoints: shape.members.map((i) => ({ address: '127.0.0.1', port: backends.list[i]?.port })),
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
    });

    const rig = useRig(() => ({
      name: 'e2e-slow-start',
      backends: () => startBackends(4),
      config: ({ backends, listenerPort }) => config(backends, listenerPort, { lbPolicy: 'ROUND_ROBIN', members: [0, 1], slowStart: true }),
      envoy: { mode: 'sotw', nodeId, name: 'envoy-slow-start' },
      waitForListener: 'ingress',
    }));

    const write = (shape: Shape): Promise<void> => rig().writeConfig(config(rig().backends, rig().listenerPort, shape));

    /** The web cluster's policy as Envoy holds it, as JSON. */
    async function webPolicy(): Promise<string> {
      const web = dumpActiveCluster(await rig().envoy.configDump(), 'web');
      return JSON.stringify({ lb: web?.lb_policy, policy: web?.load_balancing_policy });
    }

    /** CDS ACKed by this Envoy, with no NACK ever recorded. */
    function cdsAcked(): boolean {
      const t = rig().fulcrum.registry.list().find((r) => r.node.id === nodeId)?.types.get(TYPE.cluster);
      return t !== undefined && syncState(t) === 'SYNCED' && t.lastNack === undefined;
    }

    /** The hosts Envoy has in web, by backend index. */
    async function envoyMembers(): Promise<number[]> {
      const hosts = (await rig().envoy.clusterStatuses()).web?.hosts ?? [];
      return rig().backends.list.filter((b) => hosts.some((h) => h.address === `127.0.0.1:${b.port}`)).map((b) => b.index);
    }

    /** Requests sent in small batches until `untilMs` (epoch) and at least `min` sent, or `max`; their spread over backends. */
    async function trafficUntil(untilMs: number, min: number, max: number): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      let sent = 0;
      while ((Date.now() < untilMs || sent < min) && sent < max) {
        const r = await sendRequests(rig().url, 30, { concurrency: 3 });
        expect(r.errors, r.errorSamples.join('; ')).toBe(0);
        for (const [k, v] of Object.entries(r.distribution)) out[k] = (out[k] ?? 0) + v;
        sent += r.sent;
      }
      return out;
    }

    /** Resolves once a host that joined at `since` (epoch ms) is past Envoy's window, with a margin. */
    const pastWindow = (since: number): Promise<unknown> =>
      waitFor(() => Date.now() > since + WINDOW_MS + 2_000, { what: 'the slow start window over', timeoutMs: WINDOW_MS + 60_000, intervalMs: 250 });

    /**
     * Adds backend `newcomer` to a serving cluster of `members` and returns its share of the
     * traffic in the first EARLY_MS after Envoy has it, and once Envoy's window has passed.
     */
    async function joinShares(lbPolicy: Shape['lbPolicy'], members: number[], newcomer: number): Promise<{ early: number; late: number; earlyRequests: number; earlyBound: number }> {
      await write({ lbPolicy, members, slowStart: true });
      await waitFor(async () => JSON.stringify(await envoyMembers()) === JSON.stringify(members) && (await webPolicy()).includes('slow_start_config') && cdsAcked(), {
        what: `${lbPolicy} with slow start ACKed, serving ${members.join(', ')}`,
        timeoutMs: 20_000,
      });
      // Envoy starts the window of the hosts a cluster is built with too (when its load balancer
      // first sees them), so the serving hosts must be past theirs, or all ramp together.
      await pastWindow(Date.now());
      await write({ lbPolicy, members: [...members, newcomer], slowStart: true });
      await waitFor(async () => (await envoyMembers()).includes(newcomer), { what: `backend ${newcomer} in Envoy`, timeoutMs: 20_000, intervalMs: 50 });
      const joined = Date.now();
      const early = await trafficUntil(joined + EARLY_MS, 60, 3_000);
      const earlyRequests = Object.values(early).reduce((a, b) => a + b, 0);
      // On a loaded machine the first 60 requests may take longer than EARLY_MS: the bound is the
      // share Envoy's factor max(0.1, t / window) allows by the end of them, among members.length + 1
      // hosts, with a margin (whole, the newcomer would take 1 / (members.length + 1)).
      const factor = Math.min(1, Math.max(0.1, (Date.now() - joined) / WINDOW_MS));
      const earlyBound = factor / (members.length + factor) + 0.08;
      await pastWindow(joined);
      const late = await sendRequests(rig().url, 900, { concurrency: 3 });
      expect(late.errors, late.errorSamples.join('; ')).toBe(0);
      return { early: shares(early)[String(newcomer)] ?? 0, late: shares(late.distribution)[String(newcomer)] ?? 0, earlyRequests, earlyBound };
    }

    it('the typed RoundRobin with slow_start_config is ACKed and in config_dump', async () => {
      await waitFor(async () => (await webPolicy()).includes('slow_start_config') && cdsAcked(), { what: 'slow start ACKed', timeoutMs: 20_000 });
      const policy = JSON.parse(await webPolicy()) as { policy: { policies: { typed_extension_config: { typed_config: Record<string, unknown> } }[] } };
      expect(policy.policy.policies[0]?.typed_extension_config.typed_config).toMatchObject({
        '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin',
        slow_start_config: { slow_start_window: '15s', aggression: { default_value: 1, runtime_key: 'fulcrum.slow_start.web.aggression' } },
      });
    });

    // Weight factor max(0.1, t / 15 s) < 0.25 within 3.5 s: a share < 0.12 of three, against 1/3 whole.
    const ramps = [
      { lbPolicy: 'ROUND_ROBIN', newcomer: 2, lateAbove: 0.27, title: 'ROUND_ROBIN: a host added to a serving cluster gets well under its third at first, about its third after the window' },
      { lbPolicy: 'LEAST_REQUEST', newcomer: 3, lateAbove: 0.25, title: 'LEAST_REQUEST: the same ramp' },
    ] as const;
    for (const { lbPolicy, newcomer, lateAbove, title } of ramps) {
      it(title, async () => {
        const { early, late, earlyRequests, earlyBound } = await joinShares(lbPolicy, [0, 1], newcomer);
        expect(earlyRequests).toBeGreaterThanOrEqual(60);
        expect(early).toBeLessThan(earlyBound);
        // Still short of a whole share (1/3): the first requests ended well within the window.
        expect(earlyBound).toBeLessThan(0.3);
        expect(late).toBeGreaterThan(lateAbove);
      });
    }

    it('removing slowStart is ACKed, without a NACK, and the cluster keeps serving', async () => {
      await write({ lbPolicy: 'ROUND_ROBIN', members: [0, 1, 2], slowStart: false });
      await waitFor(async () => !(await webPolicy()).includes('slow_start_config') && cdsAcked(), { what: 'slow start removed and ACKed', timeoutMs: 20_000 });
      const r = await sendRequests(rig().url, 300, { concurrency: 3 });
      expect(r.errors).toBe(0);
      expect(Object.keys(r.distribution).sort()).toEqual(['0', '1', '2']);
    });
  },
  { timeout: 150_000 },
);
