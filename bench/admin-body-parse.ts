/**
 * What validating one large admin API body costs: a cluster PUT with N endpoints through the
 * admin API's parser (the config file's rules applied to the JSON value), against the former path
 * (the body serialized back to text and re-parsed by the YAML config parser). Medians of 5.
 *
 *   npx tsx bench/admin-body-parse.ts [--endpoints 20000]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseClusterBody } from '../src/admin/resources.js';
import { parseConfig } from '../src/sources/config-file.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { endpoints: { type: 'string', default: '20000' } } });
const n = Number(values.endpoints);
const endpoints = Array.from({ length: n }, (_, i) => ({ address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight: 1 + (i % 5) }));
const body = { lbPolicy: 'ROUND_ROBIN', endpoints };

function median(f: () => void): number {
  const times = [0, 1, 2, 3, 4].map(() => {
    const t = performance.now();
    f();
    return performance.now() - t;
  });
  return times.sort((a, b) => a - b)[2] ?? Number.NaN;
}

const value = median(() => parseClusterBody(body as unknown as Parameters<typeof parseClusterBody>[0], 'big'));
const text = median(() => parseConfig(JSON.stringify({ clusters: [{ ...body, name: 'big' }] }), 'request'));
console.log(`cluster PUT body with ${n} endpoints, load ${loadavg()[0]?.toFixed(1)}`);
console.log(`  parse the JSON value:             ${value.toFixed(0)} ms`);
console.log(`  re-parse its text through YAML:   ${text.toFixed(0)} ms   (${(text / value).toFixed(0)}x)`);
