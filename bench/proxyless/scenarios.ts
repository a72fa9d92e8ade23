/**
 * Scenarios and rows of the proxyless benchmark (bench/proxyless/run.ts): a fleet of queueing
 * gRPC backends (bench/go/grpcfleet) called by one grpc-go xDS client (bench/go/grpcload) at a
 * seeded Poisson rate, every row the same arrivals; rows are gRPC's own balancing options and
 * fulcrum's adaptive policies as a gRPC client receives them.
 */

/** A command for the fleet at a time: `fail I F`, `slow I X`, `workers I N`, `hang I 1|0`, `dead I 1|0` (see grpcfleet). */
export interface FleetEvent {
  /** Seconds after the load starts. */
  readonly atS: number;
  readonly command: string;
}

export interface ProxylessScenario {
  readonly name: string;
  readonly title: string;
  /** Workers per backend (relative capacities). */
  readonly workers: readonly number[];
  readonly meanServiceMs: number;
  /** Offered load, a fraction of the fleet's capacity. */
  readonly load: number;
  readonly events: readonly FleetEvent[];
  /** The backend the event hits: its share of the calls after the event is reported. */
  readonly target?: number;
  /** The client's per-call deadline (default: grpcload's, 10 s). */
  readonly deadlineMs?: number;
}

/** Seconds of load per row, warm-up left out of the latencies, steady window at the end (utilization). */
export const TIMING = { durationS: 40, warmS: 10, steadyS: 10 } as const;

// 4 backends, one of twice the capacity: 20 workers × 25 calls/s = 500 calls/s of capacity.
const FLEET = [4, 4, 4, 8];
const SERVICE_MS = 40;
const BIG = 3;

/**
 * A scenario on the fleet at `load` whose events (fleet commands on the 2× backend, `{B}` in
 * them standing for its index) hit that backend, whose share after them is reported.
 */
function onTheBig(name: string, title: string, load: number, events: readonly (readonly [atS: number, command: string])[], extra: Partial<ProxylessScenario> = {}): ProxylessScenario {
  return { name, title, workers: FLEET, meanServiceMs: SERVICE_MS, load, events: events.map(([atS, command]) => ({ atS, command: command.replace('{B}', String(BIG)) })), target: BIG, ...extra };
}

export const SCENARIOS: readonly ProxylessScenario[] = [
  { name: 'hetero', title: '4 backends, one 2×, at 70%', workers: FLEET, meanServiceMs: SERVICE_MS, load: 0.7, events: [] },
  onTheBig('fast-fail', 'the same fleet; the 2× backend fails 50% of calls at once (UNAVAILABLE) from t = 20 s', 0.7, [[20, 'fail {B} 0.5']]),
  onTheBig('slow', 'the same fleet; the 2× backend answers 4× slower from t = 20 s (a slow dependency, CPU unchanged)', 0.7, [[20, 'slow {B} 4']]),
  // A black hole, as the Envoy suite's hang: the backend's connections stay up and its calls end
  // only at their deadline, so gRPC sees the subchannel READY throughout; what takes it out is a
  // policy that counts calls in flight, or fulcrum's stall rule reading the client's load reports.
  // At 50% the others carry the load without it (83%): at 70% they were past their capacity
  // (117%) and the calls their queues held past the deadline outnumbered those lost to the hang.
  onTheBig(
    'hang',
    'the fleet at 50%; the 2× backend hangs (takes calls, never answers) from t = 20 s, answers again at 30 s; call deadline 3 s',
    0.5,
    [
      [20, 'hang {B} 1'],
      [30, 'hang {B} 0'],
    ],
    { deadlineMs: 3_000 },
  ),
  // Death, as the Envoy suite's: connections refused, so gRPC takes the subchannel out itself
  // (TRANSIENT_FAILURE) under every policy; what differs is the way back, where a weighted policy
  // must give the revived backend its share again.
  onTheBig('death', 'the fleet at 50%; the 2× backend dies (connections refused) at t = 15 s, serves again at 25 s', 0.5, [
    [15, 'dead {B} 1'],
    [25, 'dead {B} 0'],
  ]),
];

export interface ProxylessRow {
  readonly name: string;
  readonly what: string;
  /** The cluster's fields besides name, http2 and endpoints (every endpoint weight 1). */
  readonly cluster: Record<string, unknown>;
}

export const ROWS: readonly ProxylessRow[] = [
  { name: 'round-robin', what: 'gRPC round robin (ROUND_ROBIN, equal weights)', cluster: { lbPolicy: 'ROUND_ROBIN' } },
  { name: 'least-request', what: "gRPC least request (LEAST_REQUEST, equal weights: grpc-go's P2C)", cluster: { lbPolicy: 'LEAST_REQUEST' } },
  { name: 'client-wrr', what: "gRPC client-side weighted round robin from per-call ORCA", cluster: { lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' } },
  { name: 'pid', what: 'fulcrum pid (ROUND_ROBIN): its weights as per-endpoint localities', cluster: { lbPolicy: 'ROUND_ROBIN', weighting: { policy: 'pid' } } },
  // The default metric counts latency above the cluster median as load; this one equalizes cpu alone.
  { name: 'pid-cpu', what: 'fulcrum pid on cpu alone (ROUND_ROBIN)', cluster: { lbPolicy: 'ROUND_ROBIN', weighting: { policy: 'pid', metric: 'cpu' } } },
  { name: 'auto', what: 'fulcrum auto, heterogeneous capacity (chooses LEAST_REQUEST + pid)', cluster: { weighting: { policy: 'auto', traits: { heterogeneousCapacity: true } } } },
];
