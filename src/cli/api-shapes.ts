/**
 * The parts of the admin API's responses the CLI prints. The HTTP API is the contract (see
 * /openapi.json), so these are declared here rather than imported from the server's rooms: the
 * CLI talks to any fulcrum of a compatible version, not only to the code it was built with.
 */

export const XDS_TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;

export interface TypeSync {
  readonly state: string;
  readonly sentVersion?: string;
  readonly ackedVersion?: string;
  readonly lastNack?: { readonly version: string; readonly message: string; readonly at: string };
  readonly rejected?: readonly string[];
}

export interface ProxyView {
  readonly nodeId: string;
  readonly nodeCluster: string;
  readonly protocol: string;
  readonly peer: string;
  readonly connectedSince: string;
  readonly userAgent: string;
  readonly types: Readonly<Record<string, TypeSync>>;
}

export interface ProxyList {
  readonly count: number;
  readonly proxies: readonly ProxyView[];
}

export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

export interface WeightExplanation {
  readonly freshness?: string;
  readonly healthState?: string;
  readonly inputs?: Readonly<Record<string, number | undefined>>;
  readonly rules?: readonly string[];
  readonly notes?: readonly string[];
}

export interface WeightsView {
  readonly cluster: string;
  readonly computed: boolean;
  readonly policy?: string;
  readonly failStatic: boolean;
  /** Present when nothing is routable: which endpoints proxies are sent as UNKNOWN (DEGRADED, DRAINING or ALL). */
  readonly lastResort?: string;
  readonly setpoint?: number;
  readonly endpoints: readonly {
    readonly endpoint: string;
    readonly staticWeight?: number;
    readonly weight?: number;
    /** Percent of the weights proxies route to in the cluster. */
    readonly share?: number;
    readonly health?: string;
    readonly explanation?: WeightExplanation;
  }[];
}

/**
 * The least each answer the CLI reads must hold, so an answer from something else (`--server`
 * at Envoy's admin port, a login page, another service) is told as such rather than failing
 * inside a command with a TypeError, or printed as if it were a config dump.
 */
const isObject = (b: unknown): b is Record<string, unknown> => typeof b === 'object' && b !== null && !Array.isArray(b);
export type Shape = (body: unknown) => boolean;
export const SHAPES = {
  readiness: (b) => isObject(b) && typeof b.ready === 'boolean' && Array.isArray(b.reasons),
  proxies: (b) => isObject(b) && typeof b.count === 'number' && Array.isArray(b.proxies),
  openapi: (b) => isObject(b) && typeof b.openapi === 'string',
  weights: (b) => isObject(b) && typeof b.cluster === 'string' && Array.isArray(b.endpoints),
  configDump: (b) => isObject(b) && typeof b.group === 'string' && isObject(b.types),
  audit: (b) => isObject(b) && Array.isArray(b.entries),
} satisfies Record<string, Shape>;
