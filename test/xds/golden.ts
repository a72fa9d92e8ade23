/**
 * Translator golden files (the Envoy Gateway way): `golden/<case>.in.yaml` is a config file, the
 * optional `golden/<case>.weights.yaml` the adaptive weights the engine would publish, and
 * `golden/<case>.out.yaml` what the translator makes of them, per node group, as YAML of the
 * resources' JSON form. Rendering is pure: no versions, nothing that depends on the process.
 * Regenerate with `npm run golden:update` (see golden/README.md).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/sources/config-file.js';
import { envoyType, TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { MESSAGE_OF, type EncodedResource } from '../../src/xds/resource.js';
import { DEFAULT_GROUP, type ResourceSet } from '../../src/xds/resource-set.js';
import type { EndpointOverride, WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { translate } from '../../src/xds/translator.js';

export const GOLDEN_DIR = fileURLToPath(new URL('./golden/', import.meta.url));

const SECTIONS: readonly [string, XdsTypeUrl][] = [
  ['clusters', TYPE.cluster],
  ['endpoints', TYPE.endpoint],
  ['listeners', TYPE.listener],
  ['routes', TYPE.route],
];

/** The case names: every `<case>.in.yaml` in the golden folder, sorted. */
export function goldenCases(): string[] {
  return readdirSync(GOLDEN_DIR)
    .filter((f) => f.endsWith('.in.yaml'))
    .map((f) => f.slice(0, -'.in.yaml'.length))
    .sort();
}

export const goldenPath = (name: string, kind: 'in' | 'weights' | 'out'): string => `${GOLDEN_DIR}${name}.${kind}.yaml`;

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** `<case>.weights.yaml`: cluster → `address:port` → { weight?, health? }. */
function parseWeights(text: string | undefined): WeightOverrides | undefined {
  if (text === undefined) return undefined;
  const doc = parse(text) as Record<string, Record<string, EndpointOverride>>;
  return new Map(Object.entries(doc).map(([cluster, byKey]) => [cluster, new Map(Object.entries(byKey))]));
}

/** The translator's output for one case, as the YAML the .out.yaml file holds. */
export function renderCase(name: string): string {
  const file = goldenPath(name, 'in');
  const loaded = parseConfig(readFileSync(file, 'utf8'), file);
  // As src/main.ts wires it: load reporting is on unless the config turns it off.
  const lrs = loaded.server.loadReporting ? { reportEndpointMetrics: loaded.server.loadReporting.endpointMetrics } : undefined;
  const groups = translate(loaded.catalog, parseWeights(readOptional(goldenPath(name, 'weights'))), lrs);
  const all = groups.get(DEFAULT_GROUP);
  const out: Record<string, unknown> = {};
  for (const group of [...groups.keys()].sort(byDefaultFirst)) {
    const set = groups.get(group);
    if (set) out[group] = group === DEFAULT_GROUP ? renderSet(set) : renderSlice(set, all);
  }
  const header = `# Generated from ${name}.in.yaml by \`npm run golden:update\`; do not edit by hand.\n`;
  return header + stringify({ groups: out }, { lineWidth: 0 });
}

const byDefaultFirst = (a: string, b: string): number => (a === DEFAULT_GROUP ? -1 : b === DEFAULT_GROUP ? 1 : a < b ? -1 : a > b ? 1 : 0);

const sortedByName = (m: ReadonlyMap<string, EncodedResource> | undefined): EncodedResource[] =>
  [...(m?.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

function renderSet(set: ResourceSet): Record<string, unknown[]> {
  return Object.fromEntries(SECTIONS.map(([section, type]) => [section, sortedByName(set.get(type)).map(toJson)]));
}

/** A node group's slice: names of resources identical to the default group's, the whole resource otherwise. */
function renderSlice(set: ResourceSet, all: ResourceSet | undefined): Record<string, unknown[]> {
  return Object.fromEntries(
    SECTIONS.map(([section, type]) => [
      section,
      sortedByName(set.get(type)).map((r) => (all?.get(type)?.get(r.name)?.hash === r.hash ? r.name : toJson(r))),
    ]),
  );
}

/** protobufjs' JSON form (field names as in the .proto), with 64-bit integers as numbers for readability. */
const JSON_FORM: protobuf.IConversionOptions = { ...protobuf.util.toJSONOptions, longs: Number };

function toJson(r: EncodedResource): unknown {
  const type = envoyType(MESSAGE_OF[r.typeUrl]);
  return typeFirst(type.toObject(type.decode(r.bytes), JSON_FORM));
}

/** protobufjs expands an Any into its message with "@type" last; proto JSON (and people) put it first. */
function typeFirst(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(typeFirst);
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v as Record<string, unknown>).map(([k, x]): [string, unknown] => [k, typeFirst(x)]);
  entries.sort(([a], [b]) => (a === '@type' ? -1 : b === '@type' ? 1 : 0));
  return Object.fromEntries(entries);
}
