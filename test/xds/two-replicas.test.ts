/**
 * Two fulcrum processes (in-process here) started from the same config serve identical bytes with
 * identical versions, and a client that moves from one to the other is sent nothing it holds.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { syncState } from '../../src/xds/proxy-status.js';
import { waitFor } from '../support/wait.js';
import { CDS, EDS, LDS, namesOf, RDS, versionsOf, type DiscoveryResponse } from '../support/xds-client.js';
import { baseConfig, NODE, startHarness, type Harness } from './protocol-fixture.js';

const started: Harness[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((h) => h.stop()));
});

async function twoReplicas(): Promise<[Harness, Harness]> {
  const [a, b] = await Promise.all([startHarness(baseConfig()), startHarness(baseConfig())]);
  started.push(a, b);
  return [a, b];
}

/** Subscribes a SotW ADS stream to everything, ACKing as it goes; returns the four responses. */
async function sotwEverything(h: Harness): Promise<Map<string, DiscoveryResponse>> {
  const s = h.client.sotw();
  const got = new Map<string, DiscoveryResponse>();
  const take = async (type: string, names: string[], first = false) => {
    s.request(type, names, first ? { node: NODE } : {});
    const resp = await s.nextOf(type);
    s.ack(resp);
    got.set(type, resp);
  };
  await take(CDS, [], true);
  await take(EDS, ['api', 'web']);
  await take(LDS, []);
  await take(RDS, ['ingress']);
  return got;
}

describe('two replicas with the same state', () => {
  test('send identical version_info and identical resource bytes for every type', async () => {
    const [a, b] = await twoReplicas();
    const [fromA, fromB] = await Promise.all([sotwEverything(a), sotwEverything(b)]);
    for (const type of [CDS, EDS, LDS, RDS]) {
      const [ra, rb] = [fromA.get(type), fromB.get(type)];
      expect(ra?.version_info, type).toBeTruthy();
      expect(rb?.version_info, type).toBe(ra?.version_info);
      expect(rb?.resources.map((r) => Buffer.from(r.value).toString('hex')), type).toEqual(ra?.resources.map((r) => Buffer.from(r.value).toString('hex')));
    }
    expect(b.fulcrum.cache.snapshotFor('').version).toBe(a.fulcrum.cache.snapshotFor('').version);
  });

  test('a Delta client that reconnects to the other replica with initial_resource_versions receives nothing it has', async () => {
    const [a, b] = await twoReplicas();
    const onA = a.client.delta();
    onA.send({ node: NODE, type_url: EDS, resource_names_subscribe: ['api', 'web'] });
    const eds = await onA.nextOf(EDS);
    onA.ack(eds);
    onA.send({ type_url: CDS, resource_names_subscribe: ['*'] });
    const cds = await onA.nextOf(CDS);
    onA.ack(cds);
    expect(namesOf(cds)).toEqual(['api', 'web']);
    onA.cancel();

    const onB = b.client.delta();
    onB.send({ node: NODE, type_url: EDS, resource_names_subscribe: ['api', 'web'], initial_resource_versions: versionsOf(eds) });
    onB.send({ type_url: CDS, resource_names_subscribe: ['*'], initial_resource_versions: versionsOf(cds) });
    // Nothing at all: not even the empty answer a new wildcard client gets.
    await onB.expectNone(300);
    const record = await waitFor(() => b.records().find((r) => r.node.id === NODE.id && syncState(r.types.get(CDS)) === 'SYNCED'), {
      what: 'the client SYNCED on replica B',
      timeoutMs: 5_000,
      intervalMs: 10,
    });
    expect(syncState(record.types.get(EDS))).toBe('SYNCED');
    expect(record.types.get(EDS)?.sentResources.size).toBe(2);
    expect(record.types.get(CDS)?.sentResources.size).toBe(2);
  });
});
