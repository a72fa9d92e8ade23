import { describe, expect, test } from 'vitest';
import { MAX_NACK_MESSAGE_CHARS, nackMessage, rejectedResources } from '../../src/xds/nack.js';

describe('nackMessage', () => {
  test('keeps a short message, and names the code when the message is empty', () => {
    expect(nackMessage({ code: 3, message: 'cluster web: bad' })).toBe('cluster web: bad');
    expect(nackMessage({ code: 13, message: '' })).toBe('code 13');
  });

  test('bounds a long message', () => {
    const kept = nackMessage({ code: 3, message: 'x'.repeat(5_000_000) });
    expect(kept.length).toBe(MAX_NACK_MESSAGE_CHARS + 1);
    expect(kept.endsWith('…')).toBe(true);
  });
});

describe('rejectedResources', () => {
  const carried = new Map([['web', 'v1'], ['api', 'v2'], ['api.v2', 'v3']]);

  test('the names the error mentions as whole words', () => {
    expect([...rejectedResources('Error adding/updating cluster(s) api.v2, web: x', carried).keys()]).toEqual(['web', 'api.v2']);
    expect([...rejectedResources('cluster web: apis and api_x are fine', carried)]).toEqual([['web', 'v1']]);
  });

  test('the resources gRPC-js points at by their position in the response', () => {
    const refused = rejectedResources('xDS response validation errors: [resource index 2: Unsupported lb_policy; resource index 0: x]', carried);
    expect([...refused.keys()]).toEqual(['web', 'api.v2']);
  });

  test('every carried name when the error names none', () => {
    expect(rejectedResources('proto validation failed', carried)).toBe(carried);
  });
});
