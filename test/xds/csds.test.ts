/**
 * CSDS node_matchers (review: only node_id.exact and .prefix were read; any other matcher selected
 * every node). The whole StringMatcher, node_metadatas' StructMatchers, and a gRPC status for
 * what cannot be honoured.
 */
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { csdsHandlers, encodeClientStatus } from '../../src/xds/csds.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { compileStringMatcher, MatcherError } from '../../src/xds/node-matchers.js';
import type { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { sotwReq, sotwRig } from './stream-fixture.js';

const Resp = envoyType('envoy.service.status.v3.ClientStatusResponse');
const Req = envoyType('envoy.service.status.v3.ClientStatusRequest');

/** Two proxies: edge-prod-1 (role web, zones [a, b], weight 2.5, canary true) and Edge-staging-2 (role db). */
function registry(): ProxyRegistry {
  const r = sotwRig();
  const s = (v: string) => ({ stringValue: v });
  const metadata = { fields: { role: s('web'), zones: { listValue: { values: [s('a'), s('b')] } }, weight: { numberValue: 2.5 }, canary: { boolValue: true }, deep: { structValue: { fields: { tier: s('gold') } } } } };
  r.stream.onRequest(sotwReq(TYPE.cluster, [], { node: { id: 'edge-prod-1', cluster: 'default', metadata } as never }));
  const other = sotwRig();
  other.stream.onRequest(sotwReq(TYPE.cluster, [], { node: { id: 'Edge-staging-2', cluster: 'default', metadata: { fields: { role: s('db') } } } as never }));
  // One registry for both: the second rig's proxy moved into the first's.
  for (const p of other.registry.list()) r.registry.connect(p.streamId + 1_000, p.node, p.protocol, p.service, p.peer);
  return r.registry;
}

/** The request as a client sends it (encoded and decoded, so the fields are what protobufjs gives). */
function ids(reg: ProxyRegistry, matchers: unknown[]): string[] {
  const req = Req.toObject(Req.decode(Req.encode(Req.fromObject({ node_matchers: matchers })).finish()), { defaults: false });
  const resp = Resp.toObject(Resp.decode(encodeClientStatus(reg, req as never))) as { config?: { node: { id: string } }[] };
  return (resp.config ?? []).map((c) => c.node.id).sort();
}

describe('CSDS node_matchers: node_id', () => {
  const reg = registry();
  test.each([
    [{ exact: 'edge-prod-1' }, ['edge-prod-1']],
    [{ prefix: 'edge-' }, ['edge-prod-1']],
    [{ prefix: 'edge-', ignore_case: true }, ['Edge-staging-2', 'edge-prod-1']],
    [{ suffix: '-staging' }, []],
    [{ suffix: '-2' }, ['Edge-staging-2']],
    [{ contains: 'prod' }, ['edge-prod-1']],
    [{ contains: 'STAGING', ignore_case: true }, ['Edge-staging-2']],
    [{ safe_regex: { regex: '^staging-.*' } }, []],
    [{ safe_regex: { regex: '.*-(prod|staging)-[0-9]+' } }, ['Edge-staging-2', 'edge-prod-1']],
    // The whole id must match, as RE2's FullMatch in Envoy.
    [{ safe_regex: { regex: 'prod' } }, []],
  ])('%j selects %j', (nodeId, want) => expect(ids(reg, [{ node_id: nodeId }])).toEqual(want));

  test('several matchers select a node any of them selects; none selects every node', () => {
    expect(ids(reg, [{ node_id: { exact: 'edge-prod-1' } }, { node_id: { suffix: '-2' } }])).toEqual(['Edge-staging-2', 'edge-prod-1']);
    expect(ids(reg, [])).toEqual(['Edge-staging-2', 'edge-prod-1']);
  });
});

describe('CSDS node_matchers: node_metadatas', () => {
  const reg = registry();
  const at = (path: string[], value: unknown) => ({ node_metadatas: [{ path: path.map((key) => ({ key })), value }] });
  test.each([
    [at(['role'], { string_match: { exact: 'db' } }), ['Edge-staging-2']],
    [at(['role'], { string_match: { exact: 'cache' } }), []],
    [at(['deep', 'tier'], { string_match: { prefix: 'go' } }), ['edge-prod-1']],
    [at(['weight'], { double_match: { range: { start: 2, end: 3 } } }), ['edge-prod-1']],
    [at(['weight'], { double_match: { exact: 3 } }), []],
    [at(['canary'], { bool_match: true }), ['edge-prod-1']],
    [at(['canary'], { present_match: true }), ['edge-prod-1']],
    [at(['canary'], { present_match: false }), ['Edge-staging-2']],
    [at(['zones'], { list_match: { one_of: { string_match: { exact: 'b' } } } }), ['edge-prod-1']],
    [at(['role'], { or_match: { value_matchers: [{ string_match: { exact: 'db' } }, { string_match: { exact: 'web' } }] } }), ['Edge-staging-2', 'edge-prod-1']],
  ])('%j selects %j', (matcher, want) => expect(ids(reg, [matcher])).toEqual(want));

  test('node_id and every node_metadatas entry must all match', () => {
    expect(ids(reg, [{ node_id: { prefix: 'edge' }, ...at(['role'], { string_match: { exact: 'db' } }) }])).toEqual([]);
  });
});

describe('CSDS node_matchers that cannot be honoured', () => {
  const reg = registry();
  const refusal = (matchers: unknown[]): MatcherError => {
    try {
      ids(reg, matchers);
    } catch (err) {
      if (err instanceof MatcherError) return err;
      throw err;
    }
    throw new Error('expected a MatcherError');
  };

  test('a regex V8 cannot run in linear time (backreference, lookaround) is INVALID_ARGUMENT, not run', () => {
    expect(refusal([{ node_id: { safe_regex: { regex: '(a)\\1' } } }])).toMatchObject({ code: 3 });
    expect(refusal([{ node_id: { safe_regex: { regex: '(?<=a)b' } } }]).message).toContain('cannot be run in linear time');
    // A pattern that would close the anchoring group itself.
    expect(refusal([{ node_id: { safe_regex: { regex: 'x)|(?:.*' } } }])).toMatchObject({ code: 3 });
  });

  test('a catastrophic-backtracking pattern runs in linear time', () => {
    const m = compileStringMatcher({ safe_regex: { regex: '(a+)+b' } });
    const start = performance.now();
    expect(m('a'.repeat(1_024))).toBe(false);
    expect(performance.now() - start).toBeLessThan(100);
  });

  test('custom matchers are UNIMPLEMENTED; FetchClientStatus ends with that status', () => {
    const custom = [{ node_id: { custom: { name: 'x', typed_config: { type_url: 'type.googleapis.com/google.protobuf.Empty' } } } }];
    expect(refusal(custom)).toMatchObject({ code: 12 });
    let status: unknown;
    const fetch = csdsHandlers(reg).FetchClientStatus as grpc.handleUnaryCall<unknown, Buffer>;
    fetch({ request: { node_matchers: [{ node_id: { custom: {} } }] } } as never, (err) => (status = err));
    expect(status).toMatchObject({ code: 12, details: 'custom string matchers are not supported' });
  });
});
