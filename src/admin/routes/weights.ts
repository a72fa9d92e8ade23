import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { SAFETY_RULES, type ClusterTick, type Explanation } from '../../balancing/engine/types.js';
import type { ClusterRecord, CatalogStore } from '../../catalog/store/index.js';
import type { WeightOverrides } from '../../catalog/weight-overrides.js';
import { Owner, ResourceName } from '../api-schemas.js';
import { ApiError } from '../resources.js';
import { StringEnum } from '../schemas.js';
import { NOT_FOUND, securedRoute } from './schema-parts.js';
import { sendSliced } from '../sliced-answer.js';
import { endpointKey } from '../../catalog/endpoint-key.js';
import type { MissingSignals } from '../../weights/missing-signals.js';
import type { ClusterOverview } from '../../weights/cluster-overview.js';
import { bestTier, bestTierOf, LAST_RESORTS, lastResortOf, receivesTraffic, type LastResort } from '../../catalog/routable-tier.js';

/** /v1/weights/{cluster}: the weights a cluster's endpoints are published with, each explained. */

/** What the admin API needs of the weight engine adapter (AdaptiveWeights). */
export interface WeightsSource {
  explain(cluster: string): { tick: ClusterTick; explanations: ReadonlyMap<string, Explanation> } | undefined;
  /** What is published instead of the operator's weights and health (the effective values of /v1/clusters/{name}/endpoints). */
  current(): WeightOverrides;
  /** Which signal the policy is missing for which endpoints (AdaptiveWeights.missingSignals). */
  missingSignals?(cluster: string): MissingSignals | undefined;
  /** The health proxies are sent, read by key (an operator's DRAINING stays DRAINING), AdaptiveWeights.publishedHealthOf. */
  publishedHealthOf?(cluster: string): (key: string) => string | undefined;
  /** Every cluster's line, by name (AdaptiveWeights.overview). */
  overview(): ClusterOverview[];
}

export interface WeightsRoutesOptions {
  readonly weights: WeightsSource;
  /** The clusters' declared policy and static weights, before the engine has ticked. */
  readonly store?: CatalogStore;
}

const LastResortSchema = Type.Optional(
  StringEnum(LAST_RESORTS, {
    description:
      'Present only when no endpoint is published HEALTHY or UNKNOWN (nothing routable): proxies are then sent the best endpoints left as UNKNOWN, ' +
      'and route to them, whatever their health here says: those published DEGRADED, else DRAINING, else ALL (every endpoint, UNHEALTHY and TIMEOUT included). ' +
      'Restore an endpoint (or add a healthy one) to end it. Counted in the fulcrum_cluster_last_resort metric.',
  }),
);

const num = (description?: string) => Type.Optional(Type.Number(description ? { description } : {}));

const ExplanationSchema = Type.Object(
  {
    policy: Type.String(),
    health: Type.String({ description: 'As published: HEALTHY, UNHEALTHY, or the DRAINING an operator or Kubernetes set (the same as the endpoint\'s health)' }),
    healthState: Type.String(),
    freshness: StringEnum(['fresh', 'stale', 'expired', 'none'] as const),
    sampleAgeMs: num(),
    inputs: Type.Object({
      utilization: num(),
      cpu: num(),
      inflight: num(),
      latencyMs: num(),
      errors: num(),
      rps: num(),
      probeLatencyMs: num(),
    }),
    pid: Type.Optional(
      Type.Object({
        setpoint: num(),
        measurement: num(),
        error: num(),
        p: num(),
        i: num(),
        d: num(),
        output: num('Clamped controller output'),
        multiplier: num('exp(k · output): the factor applied to the weight'),
        updated: Type.Boolean({ description: 'False when this tick reused the previous step (no new sample)' }),
      }),
    ),
    ewma: Type.Optional(
      Type.Object({ estimateMs: num(), bonusMs: num(), samples: num(), weight: num() }),
    ),
    staticWeight: num(),
    fairWeight: num('Static weight × cluster scale: the decay target and the unit of floor and ceiling'),
    previousWeight: num(),
    rawWeight: num('What the controller asked for, before any safety rule'),
    weight: num('After step limit, floor, ceiling and freshness'),
    publishedWeight: num(),
    integerWeight: num(),
    rules: Type.Array(StringEnum(SAFETY_RULES), { description: 'Every safety rule that changed or held the weight' }),
    notes: Type.Array(Type.String()),
  },
  { title: 'WeightExplanation', description: 'The inputs, setpoint, error and P/I/D terms behind one weight; a number is absent when it is not finite' },
);

const MissingSignalsSchema = Type.Object(
  {
    signals: Type.Array(StringEnum(['cpu', 'inflight', 'latencyMs'] as const), { description: 'Any one of these makes an endpoint\'s data fresh' }),
    endpoints: Type.Array(Type.String(), { description: 'Endpoints (address:port) that have never sent one' }),
    of: Type.Integer({ description: 'Endpoints in the cluster' }),
    howToProvide: Type.Array(Type.String()),
    effect: Type.String(),
  },
  { title: 'MissingSignals', description: 'The policy steers on a signal these endpoints do not send: their weights are held static' },
);

export const WeightsView = Type.Object(
  {
    cluster: Type.String(),
    computed: Type.Boolean({ description: 'False until the weight engine has ticked for this cluster (weights are then the static ones)' }),
    policy: Type.Optional(Type.String()),
    failStatic: Type.Boolean({ description: 'Every eligible endpoint would be out: all published HEALTHY at static weights' }),
    lastResort: LastResortSchema,
    setpoint: num('The PID setpoint used in the last tick'),
    missingSignals: Type.Optional(MissingSignalsSchema),
    endpoints: Type.Array(
      Type.Object({
        endpoint: Type.String({ description: 'address:port' }),
        staticWeight: num(),
        weight: num('The integer weight proxies are sent (the one unit of every weight in this API)'),
        share: num('weight as a percentage of the sum of the weights of the endpoints proxies route to: those in rotation, or in lastResort those sent as UNKNOWN'),
        health: Type.Optional(Type.String()),
        explanation: Type.Optional(ExplanationSchema),
      }),
    ),
  },
  { title: 'Weights' },
);
type WeightsView = Static<typeof WeightsView>;

const count = (description: string) => Type.Integer({ minimum: 0, description });

export const WeightsOverview = Type.Object(
  {
    clusters: Type.Array(
      Type.Object({
        cluster: Type.String(),
        owner: Type.Optional(Owner),
        lbPolicy: Type.String(),
        policy: Type.String({ description: 'The weighting policy (static, pid, ewma, blend...)' }),
        endpoints: count('Endpoints published'),
        inRotation: count('Published neither UNHEALTHY, TIMEOUT nor DRAINING: what proxies send traffic to (when none is HEALTHY or UNKNOWN, see lastResort)'),
        unhealthy: count('Published UNHEALTHY or TIMEOUT'),
        draining: count('Published DRAINING'),
        computed: Type.Boolean({ description: 'False until the weight engine has ticked for this cluster' }),
        failStatic: Type.Boolean({ description: 'Every eligible endpoint would be out: all published HEALTHY at static weights' }),
        missingSignals: count('Endpoints that never sent a signal the policy steers on (their weights are held static)'),
        lastResort: LastResortSchema,
      }),
    ),
  },
  { title: 'WeightsOverview', description: 'One line per cluster: for a list of every cluster without every weight\'s explanation' },
);

const WeightsParams = Type.Object({ cluster: ResourceName }, { additionalProperties: false });

/** Numbers that JSON cannot carry (NaN, ±Infinity) are dropped rather than crash the serializer. */
function finite(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (Array.isArray(value)) return value.map(finite);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const f = finite(v);
      if (f !== undefined) out[k] = f;
    }
    return out;
  }
  return value;
}

type EndpointView = WeightsView['endpoints'][number];

/** An endpoint's share: its weight as a percentage of `total`, the weights proxies route to (0 when they route none to it). */
const shareOf = (e: Pick<EndpointView, 'health' | 'weight'>, total: number, lastResort: LastResort | undefined): number =>
  receivesTraffic(e.health, lastResort) && total > 0 ? Math.round(((e.weight ?? 0) / total) * 10_000) / 100 : 0;

/** Each endpoint with its share, and the cluster's last resort (the total summed once: it was summed per endpoint, quadratic in the cluster). */
function withShares<E extends EndpointView>(endpoints: readonly E[]): { lastResort: LastResort | undefined; endpoints: (E & { share: number })[] } {
  const lastResort = lastResortOf(bestTier(endpoints.map((e) => e.health)));
  const total = endpoints.filter((e) => receivesTraffic(e.health, lastResort)).reduce((sum, x) => sum + (x.weight ?? 0), 0);
  return { lastResort, endpoints: endpoints.map((e) => ({ ...e, share: shareOf(e, total, lastResort) })) };
}

/** Before the engine's first tick for the cluster: the declared weights and health. */
function declaredWeights(rec: ClusterRecord): WeightsView {
  const { lastResort, endpoints } = withShares(
    rec.endpoints
      .filter((e) => e.state !== 'disabled')
      .map((e) => ({ endpoint: endpointKey(e), staticWeight: e.weight, weight: e.weight, health: e.state === 'draining' ? 'DRAINING' : e.health })),
  );
  return { cluster: rec.name, computed: false, policy: rec.weighting?.kind ?? 'static', failStatic: false, ...(lastResort ? { lastResort } : {}), endpoints };
}

type Explained = NonNullable<ReturnType<WeightsSource['explain']>>;

/**
 * The engine's last tick: each weight as published (static clusters keep their static weights),
 * with its explanation. The view's head, and its endpoints as keys with `entry` making each one's
 * view: a 20,000-endpoint cluster's explanations are made (and serialized) in slices by
 * sendSliced, not in one task (~230 ms, the dashboard asking every second).
 */
function computedWeights(
  cluster: string,
  ex: Explained,
  rec: ClusterRecord | undefined,
  missing: MissingSignals | undefined,
  healthOf: (key: string) => string | undefined,
): { head: Omit<WeightsView, 'endpoints'> & { endpoints: readonly string[] }; entry: (key: string) => EndpointView } {
  const first = ex.explanations.values().next().value;
  const policy = rec?.weighting?.kind ?? first?.policy;
  // A static cluster publishes its static weights, which only the explanations hold.
  const weightOf = (key: string, integer: number): number => (policy === 'static' ? (ex.explanations.get(key)?.staticWeight ?? integer) : integer);
  // Two passes: which endpoints proxies route to depends on the best health of them all.
  const lastResort = lastResortOf(bestTierOf(ex.tick.weights.keys(), healthOf));
  let total = 0;
  for (const [key, integer] of ex.tick.weights) if (receivesTraffic(healthOf(key), lastResort)) total += weightOf(key, integer);
  const entry = (key: string): EndpointView => {
    const integer = ex.tick.weights.get(key) ?? 0;
    const explanation = ex.explanations.get(key);
    const staticWeight = explanation?.staticWeight;
    const health = healthOf(key);
    const view = {
      endpoint: key,
      ...(staticWeight !== undefined ? { staticWeight } : {}),
      weight: weightOf(key, integer),
      ...(health !== undefined ? { health } : {}),
      // The engine only knows in / out of rotation; proxies are sent DRAINING as declared (publishedHealthOf).
      ...(explanation ? { explanation: finite({ ...explanation, health: health ?? explanation.health }) as Static<typeof ExplanationSchema> } : {}),
    };
    return finite({ ...view, share: shareOf(view, total, lastResort) }) as EndpointView;
  };
  const head = {
    cluster,
    computed: true,
    ...(policy !== undefined ? { policy } : {}),
    failStatic: ex.tick.failStatic,
    ...(lastResort ? { lastResort } : {}),
    ...(ex.tick.setpoint !== undefined && Number.isFinite(ex.tick.setpoint) ? { setpoint: ex.tick.setpoint } : {}),
    ...(missing ? { missingSignals: { ...missing, signals: [...missing.signals], endpoints: [...missing.endpoints], howToProvide: [...missing.howToProvide] } } : {}),
    endpoints: [...ex.tick.weights.keys()],
  };
  return { head, entry };
}

export const weightsRoutes: FastifyPluginAsyncTypebox<WeightsRoutesOptions> = async (app, { weights, store }) => {
  app.get(
    '/v1/weights',
    {
      schema: securedRoute('weights', 'Every cluster in one line each, by name: its policies, endpoints counted by published health, whether the engine has run, fail-static, missing signals', {
        response: { 200: WeightsOverview },
      }),
    },
    // The lines are counted at once (a pass over every endpoint); their owners are read and
    // they are serialized in slices (10,000 clusters: ~2 MB).
    async (_request, reply) => sendSliced(reply, 200, WeightsOverview, { clusters: weights.overview() }, 'clusters', (line: ClusterOverview) => {
      const owner = store?.clusterOwner(line.cluster);
      return owner ? { ...line, owner } : line;
    }),
  );
  app.get(
    '/v1/weights/:cluster',
    {
      schema: securedRoute(
        'weights',
        'The weights a cluster\'s endpoints are published with, each with its explanation (inputs, setpoint, error, P/I/D terms, safety rules)',
        { params: WeightsParams, response: { 200: WeightsView, ...NOT_FOUND } },
      ),
    },
    async (request, reply) => {
      const { cluster } = request.params;
      const ex = weights.explain(cluster);
      const rec = store?.getCluster(cluster);
      const published = weights.publishedHealthOf?.(cluster);
      const healthIn = (e: Explained) => (key: string): string | undefined => published?.(key) ?? e.tick.health.get(key);
      if (ex) {
        const { head, entry } = computedWeights(cluster, ex, rec, weights.missingSignals?.(cluster), healthIn(ex));
        try {
          return await sendSliced(reply, 200, WeightsView, head, 'endpoints', entry);
        } catch (err) {
          // The engine reuses a tick's frame two ticks later: an answer whose slices outlasted that
          // (a starved loop) is made again, whole, from the latest tick. Nothing was sent yet.
          const again = weights.explain(cluster);
          if (!again) throw err;
          const latest = computedWeights(cluster, again, rec, weights.missingSignals?.(cluster), healthIn(again));
          return reply.code(200).send({ ...latest.head, endpoints: latest.head.endpoints.map(latest.entry) });
        }
      }
      if (rec) return declaredWeights(rec);
      throw new ApiError(404, `no weights for cluster ${JSON.stringify(cluster)}: unknown cluster, or the engine has not run yet`, undefined, 'NOT_FOUND');
    },
  );
};
