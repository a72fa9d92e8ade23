import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';
import protobuf from 'protobufjs';
import { encodingOnly } from '../../src/xds/encoding-descriptor.js';
import { envoyDescriptor, envoyRoot, rootFromDescriptor } from '../../src/xds/envoy-api.js';
import { MESSAGE_OF } from '../../src/xds/resource.js';
import { translate } from '../../src/xds/translator.js';
import { goldenCases, goldenPath } from './golden.js';

/**
 * The compiled build loads Envoy's API from a JSON descriptor written at build time rather than
 * parsing the .proto files (src/ always parses). Both must be the same types: the same
 * descriptor, and every resource of the golden cases decoding and re-encoding to the same bytes.
 */
describe('prebuilt Envoy API descriptor', () => {
  let dir = '';
  let file = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-descriptor-'));
    file = join(dir, 'envoy-api.json');
    writeFileSync(file, envoyDescriptor());
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('describes the same types as the parsed .proto files, without their annotations', () => {
    const loaded = rootFromDescriptor(file);
    expect(loaded).toBeDefined();
    const parsed = envoyRoot().toJSON();
    expect(JSON.stringify(loaded?.toJSON())).toBe(JSON.stringify(encodingOnly(parsed)));
    // What was left out is annotations: validation rules, and the packages that declare them.
    const text = JSON.stringify(loaded?.toJSON());
    expect(text).not.toContain('(validate.rules)');
    expect(text).not.toContain('"validate":');
    expect(JSON.stringify(parsed)).toContain('(validate.rules)');
  });

  it('keeps the built-in options that change encoding (packed)', () => {
    const root = encodingOnly({ nested: { p: { nested: { M: { fields: { a: { rule: 'repeated', type: 'int32', id: 1, options: { packed: false, '(validate.rules).repeated.min_items': 1 } } } } } } } });
    const type = new protobuf.Root().addJSON(root.nested ?? {}).lookupType('p.M');
    // Unpacked: one tag per element (08 01 08 02), not one length-delimited run (0a 02 01 02).
    expect(Buffer.from(type.encode(type.fromObject({ a: [1, 2] })).finish()).toString('hex')).toBe('08010802');
  });

  it('every golden resource decodes and re-encodes byte for byte', () => {
    const loaded = rootFromDescriptor(file);
    let checked = 0;
    for (const name of goldenCases()) {
      const path = goldenPath(name, 'in');
      for (const set of translate(parseConfig(readFileSync(path, 'utf8'), path).catalog).values()) {
        for (const [typeUrl, resources] of set) {
          const type = loaded?.lookupType(MESSAGE_OF[typeUrl]);
          for (const r of resources.values()) {
            expect(type?.encode(type.decode(r.bytes)).finish()).toEqual(r.bytes);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('a descriptor from another .proto tree or parser is ignored, as is a damaged one', () => {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { stamp: string };
    writeFileSync(file, JSON.stringify({ ...doc, stamp: '{"xds":"0.0.0"}' }));
    expect(rootFromDescriptor(file)).toBeUndefined();
    writeFileSync(file, '{ not json');
    expect(rootFromDescriptor(file)).toBeUndefined();
    expect(rootFromDescriptor(join(dir, 'missing.json'))).toBeUndefined();
  });
});
