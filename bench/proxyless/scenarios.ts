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

export const SCENARIOS: readonly ProxylessScenario[] = [
  { name: 'hetero', title: '4 backends, one 2×, at 70%', workers: FLEET, meanServiceMs: SERVICE_MS, load: 0.7, events: [] },
  {
    name: 'fast-fail',
    title: 'the same fleet; the 2× backend fails 50% of calls at once (UNAVAILABLE) from t = 20 s',
    workers: FLEET,
    meanServiceMs: SERVICE_MS,
    load: 0.7,
    events: [{ atS: 20, command: `fail ${BIG} 0.5` }],
    target: BIG,
  },
  {
    name: 'slow',
    title: 'the same fleet; the 2× backend answers 4× slower from t = 20 s (a slow dependency, CPU unchanged)',
    workers: FLEET,
    meanServiceMs: SERVICE_MS,
    load: 0.7,
    events: [{ atS: 20, command: `slow ${BIG} 4` }],
    target: BIG,
  },
  // A black hole, as the Envoy suite's hang: the backend's connections stay up and its calls end
  // only at their deadline, so gRPC sees the subchannel READY throughout; what takes it out is a
  // policy that counts calls in flight, or fulcrum's stall rule reading the client's load reports.
  // At 50% the others carry the load without it (83%): at 70% they were past their capacity
  // (117%) and the calls their queues held past the deadline outnumbered those lost to the hang.
  {
    name: 'hang',
    title: 'the fleet at 50%; the 2× backend hangs (takes calls, never answers) from t = 20 s, answers again at 30 s; call deadline 3 s',
    workers: FLEET,
    meanServiceMs: SERVICE_MS,
    load: 0.5,
    events: [
      { atS: 20, command: `hang ${BIG} 1` },
      { atS: 30, command: `hang ${BIG} 0` },
    ],
    target: BIG,
    deadlineMs: 3_000,
  },
  // Death, as the Envoy suite's: connections refused, so gRPC takes the subchannel out itself
  // (TRANSIENT_FAILURE) under every policy; what differs is the way back, where a weighted policy
  // must give the revived backend its share again.
  {
    name: 'death',
    title: 'the fleet at 50%; the 2× backend dies (connections refused) at t = 15 s, serves again at 25 s',
    workers: FLEET,
    meanServiceMs: SERVICE_MS,
    load: 0.5,
    events: [
      { atS: 15, command: `dead ${BIG} 1` },
      { atS: 25, command: `dead ${BIG} 0` },
    ],
    target: BIG,
  },
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
