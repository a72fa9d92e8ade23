import type { AdminClient } from './admin-client.js';
import { SHAPES, XDS_TYPES, type ProxyList, type ProxyView, type Readiness, type WeightsView } from './api-shapes.js';
import { formatTable } from './table.js';

/** The read-only operator commands: each GETs the admin API and renders a table, or the JSON as is. */

export type OutputFormat = 'table' | 'json';

export interface CommandContext {
  readonly client: AdminClient;
  readonly output: OutputFormat;
  readonly write: (text: string) => void;
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** `fulcrum status`: alive, ready (with reasons), version, and the proxies by sync state. */
export async function statusCommand({ client, output, write }: CommandContext): Promise<number> {
  const ready = (await client.get('/readyz', SHAPES.readiness, [503])).body as Readiness;
  const proxies = (await client.get('/v1/proxies', SHAPES.proxies)).body as ProxyList;
  const version = ((await client.get('/openapi.json', SHAPES.openapi)).body as { info?: { version?: string } }).info?.version ?? 'unknown';
  const byState = proxyStates(proxies.proxies);
  if (output === 'json') {
    write(json({ version, ready: ready.ready, reasons: ready.reasons, proxies: { count: proxies.count, byState } }));
  } else {
    const states = Object.entries(byState).map(([s, n]) => `${n} ${s}`).join(', ');
    write(
      formatTable(
        ['FIELD', 'VALUE'],
        [
          ['version', version],
          ['ready', ready.ready ? 'yes' : `no: ${ready.reasons.join('; ')}`],
          ['proxies', `${proxies.count}${states ? ` (${states})` : ''}`],
        ],
      ),
    );
  }
  return ready.ready ? 0 : 1;
}

/** A proxy's overall state: the worst of its types (NACKED over STALE over SYNCED). */
export function overallState(p: ProxyView): string {
  const states = XDS_TYPES.map((t) => p.types[t]?.state ?? 'NOT_SENT');
  for (const s of ['NACKED', 'STALE', 'SYNCED']) if (states.includes(s)) return s;
  return 'NOT_SENT';
}

function proxyStates(proxies: readonly ProxyView[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of proxies) {
    const s = overallState(p);
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return counts;
}

/** `fulcrum proxies`: one row per proxy stream, the sync state per xDS type (like istioctl proxy-status). */
export async function proxiesCommand({ client, output, write }: CommandContext): Promise<number> {
  const list = (await client.get('/v1/proxies', SHAPES.proxies)).body as ProxyList;
  if (output === 'json') {
    write(json(list));
    return 0;
  }
  const rows = list.proxies.map((p) => [p.nodeId, p.nodeCluster || '-', ...XDS_TYPES.map((t) => p.types[t]?.state ?? 'NOT_SENT'), p.protocol, p.peer]);
  write(formatTable(['NODE', 'CLUSTER', ...XDS_TYPES, 'PROTOCOL', 'PEER'], rows));
  const nacks = list.proxies.flatMap((p) =>
    XDS_TYPES.flatMap((t) => {
      const sync = p.types[t];
      const nack = sync?.state === 'NACKED' ? sync.lastNack : undefined;
      // The resources it still lacks, when the proxy's error named them (see /v1/proxies `rejected`).
      const refused = sync?.rejected !== undefined && sync.rejected.length > 0 ? ` (refused: ${sync.rejected.join(', ')})` : '';
      return nack ? [`${p.nodeId} ${t} rejected version ${nack.version}${refused}: ${nack.message}`] : [];
    }),
  );
  if (nacks.length > 0) write(`\n${nacks.join('\n')}\n`);
  return 0;
}

const num = (v: number | undefined, digits = 3): string => (v === undefined ? '-' : String(Number(v.toFixed(digits))));

/** The head's words for a cluster with nothing routable (WeightsView.lastResort): what proxies are sent instead. */
function lastResortNote(lastResort: string | undefined): string {
  if (lastResort === undefined) return '';
  const sent = lastResort === 'ALL' ? 'every endpoint is' : `the ${lastResort} endpoints are`;
  return `, NOTHING ROUTABLE: ${sent} sent to proxies as UNKNOWN`;
}

/** `fulcrum weights <cluster>`: each endpoint's published weight and why. */
export async function weightsCommand({ client, output, write }: CommandContext, cluster: string): Promise<number> {
  const view = (await client.get(`/v1/weights/${encodeURIComponent(cluster)}`, SHAPES.weights)).body as WeightsView;
  if (output === 'json') {
    write(json(view));
    return 0;
  }
  const rows = view.endpoints.map((e) => {
    const x = e.explanation;
    // The API's share: of the endpoints proxies route to (a DRAINING or UNHEALTHY one takes none).
    const share = e.share !== undefined ? `${e.share.toFixed(1)}%` : '-';
    const why = [...(x?.rules ?? []), ...(x?.notes ?? [])].join('; ') || '-';
    return [e.endpoint, num(e.weight), share, num(e.staticWeight), e.health ?? '-', x?.freshness ?? '-', num(x?.inputs?.utilization), why];
  });
  const head = `cluster ${view.cluster}, policy ${view.policy ?? 'static'}${view.computed ? '' : ' (engine not run yet: declared weights)'}${view.failStatic ? ', FAIL-STATIC: every endpoint would be out, all published at static weights' : ''}${lastResortNote(view.lastResort)}${view.setpoint !== undefined ? `, setpoint ${num(view.setpoint)}` : ''}\n`;
  write(head + formatTable(['ENDPOINT', 'WEIGHT', 'SHARE', 'STATIC', 'HEALTH', 'SIGNAL', 'UTILIZATION', 'WHY'], rows));
  return 0;
}

/** `fulcrum config-dump --node ID`: the resources that node is sent, decoded (always JSON). */
export async function configDumpCommand({ client, write }: CommandContext, node: string | undefined, type: string | undefined): Promise<number> {
  const query = new URLSearchParams();
  if (node !== undefined) query.set('node', node);
  if (type !== undefined) query.set('type', type.toUpperCase());
  const q = query.toString();
  write(json((await client.get(`/v1/config_dump${q ? `?${q}` : ''}`, SHAPES.configDump)).body));
  return 0;
}
