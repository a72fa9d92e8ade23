import { expect, test } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { asks, sharedSubscription } from '../../src/xds/shared-subscriptions.js';

test('streams asking for the same names in the same order share one entry by identity', () => {
  const a = sharedSubscription(TYPE.endpoint, false, ['c1', 'c2', 'c3']);
  const b = sharedSubscription(TYPE.endpoint, false, ['c1', 'c2', 'c3']);
  expect(b).toBe(a);
  expect([...a.names]).toEqual(['c1', 'c2', 'c3']);
  expect(a.sub).toEqual({ all: false, names: ['c1', 'c2', 'c3'], key: `${TYPE.endpoint}\n["c1","c2","c3"]` });
});

test('a different request gets another entry; what another stream holds is unchanged (copy-on-write)', () => {
  const held = sharedSubscription(TYPE.endpoint, false, ['x', 'y']);
  const reordered = sharedSubscription(TYPE.endpoint, false, ['y', 'x']);
  const grown = sharedSubscription(TYPE.endpoint, false, ['x', 'y', 'z']);
  expect(reordered).not.toBe(held);
  // The snapshot memo key is order-free: both resolve to the same body.
  expect(reordered.sub.key).toBe(held.sub.key);
  expect(grown.names.has('z')).toBe(true);
  expect(held.names.has('z')).toBe(false);
});

test('type and wildcard are part of the identity', () => {
  const eds = sharedSubscription(TYPE.endpoint, false, ['a']);
  expect(sharedSubscription(TYPE.route, false, ['a'])).not.toBe(eds);
  const wild = sharedSubscription(TYPE.cluster, true, ['a']);
  expect(wild).not.toBe(sharedSubscription(TYPE.cluster, false, ['a']));
  expect(wild.sub).toEqual({ all: true, names: [], key: `${TYPE.cluster}\n*` });
});

test('an ACK repeating the subscription is recognized without a lookup; any difference is not', () => {
  const held = sharedSubscription(TYPE.endpoint, false, ['p', 'q']);
  expect(asks(held, false, ['p', 'q'])).toBe(true);
  expect(asks(held, false, ['q', 'p'])).toBe(false);
  expect(asks(held, false, ['p'])).toBe(false);
  expect(asks(held, true, ['p', 'q'])).toBe(false);
});

test('a name holding the key separator is not mistaken for the names it joins', () => {
  const two = sharedSubscription(TYPE.endpoint, false, ['m', 'n']);
  const one = sharedSubscription(TYPE.endpoint, false, ['m\nn']);
  expect(one).not.toBe(two);
  expect([...one.names]).toEqual(['m\nn']);
  expect(one.sub.names).toEqual(['m\nn']);
  expect(one.sub.key).not.toBe(two.sub.key);
});

test('a frozen list (one per distinct request encoding) finds the same entry as an equal plain list', () => {
  const plain = sharedSubscription(TYPE.endpoint, false, ['f1', 'f2']);
  const frozen = Object.freeze(['f1', 'f2']);
  expect(sharedSubscription(TYPE.endpoint, false, frozen)).toBe(plain);
  expect(sharedSubscription(TYPE.endpoint, false, frozen)).toBe(plain);
  // Type and wildcard still tell entries apart when the list is the same object.
  expect(sharedSubscription(TYPE.route, false, frozen)).not.toBe(plain);
  expect(sharedSubscription(TYPE.endpoint, true, frozen).wildcard).toBe(true);
  // A list first seen frozen is held as it is, not copied.
  const fresh = Object.freeze(['f3']);
  expect(sharedSubscription(TYPE.endpoint, false, fresh).listed).toBe(fresh);
});
