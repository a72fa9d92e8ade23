/**
 * Validation parity, generated: random VALID config documents (test/support/catalog-arbitraries.ts)
 * go through fulcrum's config file to a real Envoy 1.40, which must ACK every resource of every one
 * (no NACK recorded by fulcrum, no `update_rejected` in Envoy's stats, every cluster in its config
 * dump, every listener bound on its port). Traffic is not sent: the generated endpoints are random
 * addresses, not backends. Each document's names carry a fresh prefix and its listeners fresh ports, so documents do
 * not interact.
 *
 * Bounded: FULCRUM_PARITY_RUNS documents (default 30, ~30 s on a loaded 2-core machine). The seed
 * is printed; FULCRUM_PARITY_SEED replays a failure. The seed's parity picks SotW or Delta xDS
 * (FULCRUM_PARITY_MODE overrides).
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import YAML from 'yaml';
import { TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { syncState, type ProxyRecord } from '../../src/xds/proxy-status.js';
import { configDocArb, prefixNames, type ConfigDoc } from '../support/catalog-arbitraries.js';
import { describeEnvoy, dumpClusterNames, dumpListenerNames } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { useRig, type Rig } from '../support/rig.js';
import { waitFor } from '../support/wait.js';

const RUNS = Number(process.env.FULCRUM_PARITY_RUNS ?? 30);
const SEED = Number(process.env.FULCRUM_PARITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** SotW or Delta xDS, by the seed unless FULCRUM_PARITY_MODE says (so runs cover both and a seed replays its mode). */
const MODE = process.env.FULCRUM_PARITY_MODE === 'sotw' || process.env.FULCRUM_PARITY_MODE === 'delta' ? process.env.FULCRUM_PARITY_MODE : SEED % 2 === 0 ? 'sotw' : 'delta';

const noBackends = { close: async () => {} };
type ParityRig = Rig<typeof noBackends>;

/** Fresh free ports for the document's listeners; listeners sharing a placeholder share the port. */
async function withPorts(doc: ConfigDoc): Promise<ConfigDoc> {
  const ports = new Map<unknown, number>();
  const listeners = [];
  for (const l of doc.listeners) {
    const port = ports.get(l.port) ?? (await freePort());
    ports.set(l.port, port);
    listeners.push({ ...l, port });
  }
  return { ...doc, listeners };
}

function proxyOf(rig: ParityRig): ProxyRecord | undefined {
  return rig.fulcrum.registry.list().find((r) => r.node.id === rig.name);
}

const sameNames = (sent: ReadonlyMap<string, string>, want: readonly string[]): boolean =>
  sent.size === want.length && want.every((n) => sent.has(n));

/** What each xDS type must hold once the document is applied. */
function expected(doc: ConfigDoc): [XdsTypeUrl, string[]][] {
  const clusters = doc.clusters.map((c) => String(c.name));
  const listeners = doc.listeners.map((l) => String(l.name));
  // Without listeners Envoy subscribes to no route configuration: RDS is not checked then.
  const routes: [XdsTypeUrl, string[]][] = listeners.length > 0 ? [[TYPE.route, listeners]] : [];
  return [[TYPE.cluster, clusters], [TYPE.endpoint, clusters], [TYPE.listener, listeners], ...routes];
}

/** Waits until Envoy holds exactly the document's resources, ACKed; fails on the first NACK. */
async function expectAcked(rig: ParityRig, doc: ConfigDoc): Promise<void> {
  const want = expected(doc);
  await waitFor(
    (ctx) => {
      const proxy = proxyOf(rig);
      if (!proxy) return false;
      for (const [type, t] of proxy.types) {
        if (syncState(t) === 'NACKED') ctx.abort(new Error(`Envoy NACKed ${type}: ${t.lastNack?.message ?? ''}`));
      }
      const states = want.map(([type, names]) => {
        const t = proxy.types.get(type);
        return { type, synced: t !== undefined && sameNames(t.sentResources, names) && syncState(t) === 'SYNCED' };
      });
      ctx.note(states);
      return states.every((s) => s.synced);
    },
    { what: 'Envoy to ACK every resource of the document', timeoutMs: 20_000 },
  );
  const rejected = Object.entries(await rig.envoy.stats('update_rejected')).filter(([, v]) => v > 0);
  expect(rejected, 'Envoy stats: update_rejected').toEqual([]);
  // ACKed listeners are bound (a bind failure would have been a NACK), each on its own port.
  await waitFor(
    async () => {
      const bound = await rig.envoy.listeners();
      return doc.listeners.every((l) => bound.some((b) => b.name === l.name && b.port === l.port));
    },
    { what: "Envoy's listeners bound on the document's ports", timeoutMs: 10_000 },
  );
  const dump = await rig.envoy.configDump();
  expect(dumpClusterNames(dump)).toEqual(expect.arrayContaining(doc.clusters.map((c) => String(c.name))));
  expect(dumpListenerNames(dump)).toEqual(expect.arrayContaining(doc.listeners.map((l) => String(l.name))));
}

describeEnvoy(
  'validation parity: generated valid catalogs are ACKed by a real Envoy',
  () => {
    const rig = useRig(() => ({ name: 'parity', backends: async () => noBackends, config: () => ({ clusters: [], listeners: [] }), envoy: { mode: MODE } }));

    it(`ACKs ${RUNS} random valid catalogs (seed ${SEED}, ${MODE})`, async () => {
      console.log(`[envoy-parity] seed ${SEED}, ${RUNS} runs over ${MODE} xDS (replay: FULCRUM_PARITY_SEED=${SEED})`);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(configDocArb, async (generated) => {
          n++;
          const doc = await withPorts(prefixNames(generated, `p${n}-`));
          await rig().writeConfig({ ...doc });
          try {
            await expectAcked(rig(), doc);
          } catch (err) {
            console.log(`[envoy-parity] rejected document (seed ${SEED}, run ${n}):\n${YAML.stringify(doc)}`);
            throw err;
          }
        }),
        // Shrinking would push hundreds more documents through Envoy: the failing one is printed instead.
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    });
  },
  { timeout: 240_000 },
);
