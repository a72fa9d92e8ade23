import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const HELP = `What each connected stream holds in the JS heap: two V8 heap snapshots of one server taken
with different numbers of streams (bench/memory.ts --heap-snapshots DIR writes them), grouped by
what the objects are, and the difference divided by the difference in streams.

  npx tsx bench/heap-groups.ts --streams A,B [--top N] fewer.heapsnapshot more.heapsnapshot

Groups: an object by its constructor name (Map, Set, Http2Stream, ...); a string, number or code
object by its kind; V8's internal arrays and hash tables by what holds them ("(object elements)
of Map" is a Map's table). Self sizes only: a Map's entries count under its table, the strings
they point to under "string".

Options:
  --streams A,B   the stream counts of the two snapshots (required)
  --top N         how many groups to print (default 25)
  -h, --help      this text
`;

const { values: args, positionals } = parseArgs({
  options: { streams: { type: 'string' }, top: { type: 'string', default: '25' }, help: { type: 'boolean', short: 'h', default: false } },
  allowPositionals: true,
});
if (args.help || positionals.length !== 2 || !args.streams) {
  process.stdout.write(HELP);
  process.exit(args.help ? 0 : 2);
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

/** Kinds whose objects are named by their holder: V8's backing stores carry no useful name. */
const NAMED_BY_HOLDER = new Set(['array', 'hidden', 'object shape']);

/** The first strong retainer of every node (by node index), from one pass over the edges. */
function firstRetainers(s: RawSnapshot): Int32Array {
  const nf = s.snapshot.meta.node_fields.length;
  const ef = s.snapshot.meta.edge_fields.length;
  const edgeCountAt = s.snapshot.meta.node_fields.indexOf('edge_count');
  const toAt = s.snapshot.meta.edge_fields.indexOf('to_node');
  const typeAt = s.snapshot.meta.edge_fields.indexOf('type');
  const weak = s.snapshot.meta.edge_types[0].indexOf('weak');
  const holder = new Int32Array(s.nodes.length / nf).fill(-1);
  let edge = 0;
  for (let node = 0; node < holder.length; node++) {
    const count = s.nodes[node * nf + edgeCountAt] ?? 0;
    for (let i = 0; i < count; i++, edge += ef) {
      if (s.edges[edge + typeAt] === weak) continue;
      const to = (s.edges[edge + toAt] ?? 0) / nf;
      if (holder[to] === -1) holder[to] = node;
    }
  }
  return holder;
}

function groups(s: RawSnapshot): Map<string, Group> {
  const fields = s.snapshot.meta.node_fields;
  const nf = fields.length;
  const kinds = s.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const label = (node: number): string => {
    const kind = kinds[s.nodes[node * nf + (typeAt ?? 0)] ?? 0] ?? '?';
    if (kind === 'object' || kind === 'native' || kind === 'closure') return `${kind} ${s.strings[s.nodes[node * nf + (nameAt ?? 0)] ?? 0] ?? '?'}`;
    return kind;
  };
  const holder = firstRetainers(s);
  const out = new Map<string, Group>();
  for (let node = 0; node < holder.length; node++) {
    const kind = kinds[s.nodes[node * nf + (typeAt ?? 0)] ?? 0] ?? '?';
    const by = holder[node] ?? -1;
    const name = NAMED_BY_HOLDER.has(kind) ? `${kind} ${s.strings[s.nodes[node * nf + (nameAt ?? 0)] ?? 0] ?? ''} of ${by >= 0 ? label(by) : 'root'}` : label(node);
    const g = out.get(name) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[node * nf + (sizeAt ?? 0)] ?? 0;
    out.set(name, g);
  }
  return out;
}

const [fewer = 0, more = 0] = args.streams.split(',').map(Number);
if (!(more > fewer)) throw new Error('--streams: expected A,B with B > A');
const [a, b] = await Promise.all(positionals.map(async (f) => groups(JSON.parse(await readFile(f, 'utf8')) as RawSnapshot)));
const per = more - fewer;
const rows = [...(b ?? new Map<string, Group>())].map(([name, g]) => {
  const base = a?.get(name) ?? { count: 0, bytes: 0 };
  return { name, count: (g.count - base.count) / per, bytes: (g.bytes - base.bytes) / per };
});
rows.sort((x, y) => y.bytes - x.bytes);
const total = rows.reduce((sum, r) => sum + r.bytes, 0);
const lines = [`JS heap per stream (${fewer} → ${more} streams): ${(total / 1024).toFixed(2)} KiB`, '', '| group | objects per stream | bytes per stream |', '|---|---|---|'];
for (const r of rows.slice(0, Number(args.top))) lines.push(`| ${r.name} | ${r.count.toFixed(1)} | ${Math.round(r.bytes)} |`);
process.stdout.write(`${lines.join('\n')}\n`);
