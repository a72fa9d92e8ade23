import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { SAFETY_RULES, type ClusterTick, type Explanation } from '../../balancing/engine/types.js';
import type { ClusterRecord, CatalogStore } from '../../catalog/store/index.js';
import type { WeightOverrides } from '../../catalog/weight-overrides.js';
import { ResourceName } from '../api-schemas.js';
import { ApiError } from '../resources.js';
import { StringEnum } from '../schemas.js';
import { NOT_FOUND, securedRoute } from './schema-parts.js';
import { endpointKey } from '../../catalog/endpoint-key.js';

/** /v1/weights/{cluster}: the weights a cluster's endpoints are published with, each explained. */

/** What the admin API needs of the weight engine adapter (AdaptiveWeights). */
export interface WeightsSource {
  explain(cluster: string): { tick: ClusterTick; explanations: ReadonlyMap<string, Explanation> } | undefined;
  /** What is published instead of the operator's weights and health (the effective values of /v1/clusters/{name}/endpoints). */
  current(): WeightOverrides;
}

export interface WeightsRoutesOptions {
  readonly weights: WeightsSource;
  /** The clusters' declared policy and static weights, before the engine has ticked. */
  readonly store?: CatalogStore;
}

const num = (description?: string) => Type.Optional(Type.Number(description ? { description } : {}));

const ExplanationSchema = Type.Object(
  {
    policy: Type.String(),
    health: Type.String({ description: 'HEALTHY or UNHEALTHY, as published' }),
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

const WeightsView = Type.Object(
  {
    cluster: Type.String(),
    computed: Type.Boolean({ description: 'False until the weight engine has ticked for this cluster (weights are then the static ones)' }),
    policy: Type.Optional(Type.String()),
    failStatic: Type.Boolean({ description: 'Every eligible endpoint would be out: all published HEALTHY at static weights' }),
    setpoint: num('The PID setpoint used in the last tick'),
    endpoints: Type.Array(
      Type.Object({
        endpoint: Type.String({ description: 'address:port' }),
        staticWeight: num(),
        weight: num('The weight proxies are sent'),
        health: Type.Optional(Type.String()),
        explanation: Type.Optional(ExplanationSchema),
      }),
    ),
  },
  { title: 'Weights' },
);
type WeightsView = Static<typeof WeightsView>;

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

/** Before the engine's first tick for the cluster: the declared weights and health. */
function declaredWeights(rec: ClusterRecord): WeightsView {
  return {
    cluster: rec.name,
    computed: false,
    policy: rec.weighting?.kind ?? 'static',
    failStatic: false,
    endpoints: rec.endpoints
      .filter((e) => e.state !== 'disabled')
      .map((e) => ({ endpoint: endpointKey(e), staticWeight: e.weight, weight: e.weight, health: e.state === 'draining' ? 'DRAINING' : e.health })),
  };
}

/** The engine's last tick: each weight as published (static clusters keep their static weights), with its explanation. */
function computedWeights(cluster: string, ex: NonNullable<ReturnType<WeightsSource['explain']>>, rec: ClusterRecord | undefined): WeightsView {
  const first = ex.explanations.values().next().value;
  const policy = rec?.weighting?.kind ?? first?.policy;
  const endpoints = [...ex.tick.weights].map(([key, integer]) => {
    const explanation = ex.explanations.get(key);
    const staticWeight = explanation?.staticWeight;
    return {
      endpoint: key,
      ...(staticWeight !== undefined ? { staticWeight } : {}),
      weight: policy === 'static' && staticWeight !== undefined ? staticWeight : integer,
      ...(ex.tick.health.has(key) ? { health: ex.tick.health.get(key) } : {}),
      ...(explanation ? { explanation: finite(explanation) as Static<typeof ExplanationSchema> } : {}),
    };
  });
  return {
    cluster,
    computed: true,
    ...(policy !== undefined ? { policy } : {}),
    failStatic: ex.tick.failStatic,
    ...(ex.tick.setpoint !== undefined && Number.isFinite(ex.tick.setpoint) ? { setpoint: ex.tick.setpoint } : {}),
    endpoints: finite(endpoints) as typeof endpoints,
  };
}

export const weightsRoutes: FastifyPluginAsyncTypebox<WeightsRoutesOptions> = async (app, { weights, store }) => {
  app.get(
    '/v1/weights/:cluster',
    {
      schema: securedRoute(
        'weights',
        'The weights a cluster\'s endpoints are published with, each with its explanation (inputs, setpoint, error, P/I/D terms, safety rules)',
        { params: WeightsParams, response: { 200: WeightsView, ...NOT_FOUND } },
      ),
    },
    async (request) => {
      const { cluster } = request.params;
      const ex = weights.explain(cluster);
      const rec = store?.getCluster(cluster);
      if (ex) return computedWeights(cluster, ex, rec);
      if (rec) return declaredWeights(rec);
      throw new ApiError(404, `no weights for cluster ${JSON.stringify(cluster)}: unknown cluster, or the engine has not run yet`, undefined, 'NOT_FOUND');
    },
  );
};
