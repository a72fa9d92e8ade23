/**
 * A deterministic fleet model for the weight engine: endpoints with capacities, a total
 * offered load split by the currently published integer weights, utilization = load share /
 * capacity (+ seeded noise). One `step()` = one report from every endpoint + one engine tick.
 */
import { seededRandom } from '../../../examples/backends/poisson-load.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EjectionSettings, SafetySettings, WeightingPolicy } from '../../../src/balancing/engine/types.js';

/** mulberry32, seeded: the same generator the benchmark's load uses. */
export const prng = seededRandom;

export interface FleetOptions {
  readonly capacities: readonly number[];
  /** Offered load as a fraction of total capacity. */
  readonly loadFraction: number;
  /** Relative noise amplitude on utilization (uniform ±noise). */
  readonly noise: number;
  readonly seed: number;
  readonly policy: WeightingPolicy;
  readonly safety?: Partial<SafetySettings>;
  readonly ejection?: Partial<EjectionSettings>;
  readonly tickMs?: number;
  /** Requests per second per unit of load (for rps and error reports; default 100). */
  readonly rpsPerUnit?: number;
  /**
   * Each failed request is retried once on the other endpoints in rotation, by their weights (as
   * fulcrum's default route retries do); default false: a failed request is lost.
   */
  readonly retryErrors?: boolean;
  /**
   * Failed requests cost as much CPU as served ones (slow failures: timeouts, errors after the
   * work); default false: fast errors cost no CPU.
   */
  readonly errorsCostCpu?: boolean;
}

export class Fleet {
  readonly engine: WeightEngine;
  readonly keys: string[];
  capacities: number[];
  weights: number[];
  /** Whether each endpoint receives traffic (published HEALTHY). */
  healthy: boolean[];
  /** Share of each endpoint's requests answered with a fast error (no CPU spent on them). */
  errorRates: number[];
  /** Each endpoint's reported latency, ms (undefined: not reported). */
  latencies: (number | undefined)[];
  /** Whether each endpoint's reports carry cpu (false: an agent that sends only load reports). */
  reportsCpu: boolean[];
  /** Whether each endpoint's reports carry rps and errors (false: cpu only, no load reports). */
  reportsTraffic: boolean[];
  now = 0;
  last: ClusterTick | undefined;
  /** Endpoints added by join (their keys' last number). */
  private joined = 0;
  private readonly rand: () => number;
  private load: number;
  readonly tickMs: number;

  constructor(private readonly o: FleetOptions) {
    this.engine = new WeightEngine({ ...(o.safety ? { safety: o.safety } : {}), ...(o.ejection ? { ejection: o.ejection } : {}) });
    this.errorRates = o.capacities.map(() => 0);
    this.latencies = o.capacities.map(() => undefined);
    this.reportsCpu = o.capacities.map(() => true);
    this.reportsTraffic = o.capacities.map(() => true);
    this.keys = o.capacities.map((_, i) => `10.0.0.${i + 1}:8080`);
    this.capacities = [...o.capacities];
    this.weights = o.capacities.map(() => 1);
    this.healthy = o.capacities.map(() => true);
    this.rand = prng(o.seed);
    this.load = o.loadFraction * o.capacities.reduce((a, b) => a + b, 0);
    this.tickMs = o.tickMs ?? 1000;
    this.engine.setCluster(
      'svc',
      this.keys.map((key) => ({ key, weight: 1 })),
      o.policy,
    );
  }

  /** Sets the offered load to `fraction` of the fleet's current total capacity (a morning ramp, a quiet night). */
  setLoadFraction(fraction: number): void {
    this.load = fraction * this.capacities.reduce((a, b) => a + b, 0);
  }

  /**
   * Adds an endpoint of `capacity` to the cluster while it serves (a scaled-out pod: a newcomer,
   * held-weights.ts), reporting like the others from the next step. The offered load stays what it
   * was (a fraction of the capacity the fleet started with).
   */
  join(capacity: number): number {
    const i = this.keys.length;
    this.keys.push(`10.0.1.${++this.joined}:8080`);
    this.capacities.push(capacity);
    this.weights.push(1);
    this.healthy.push(true);
    this.errorRates.push(0);
    this.latencies.push(undefined);
    this.reportsCpu.push(true);
    this.reportsTraffic.push(true);
    this.setEndpoints();
    return i;
  }

  /** Removes endpoint i from the cluster (a scaled-in pod); the others move up a position. */
  leave(i: number): void {
    for (const v of [this.keys, this.capacities, this.weights, this.healthy, this.errorRates, this.latencies, this.reportsCpu, this.reportsTraffic]) v.splice(i, 1);
    this.setEndpoints();
  }

  private setEndpoints(): void {
    this.engine.setCluster(
      'svc',
      this.keys.map((key) => ({ key, weight: 1 })),
      this.o.policy,
    );
  }

  /** Load units each endpoint receives under the current published weights; 0 when out of rotation. */
  offered(): number[] {
    const effective = this.weights.map((w, i) => (this.healthy[i] ? w : 0));
    const total = effective.reduce((a, b) => a + b, 0);
    const first = effective.map((w) => this.load * (w / total));
    if (this.o.retryErrors !== true) return first;
    const retried = first.map(() => 0);
    first.forEach((x, i) => {
      const failed = x * (this.errorRates[i] as number);
      const others = total - (effective[i] as number);
      if (failed > 0 && others > 0) effective.forEach((w, j) => (retried[j] = (retried[j] as number) + (j === i ? 0 : (failed * w) / others)));
    });
    return first.map((x, i) => x + (retried[i] as number));
  }

  /** Utilization of each endpoint (no noise): the requests it really serves over its capacity. */
  utilization(): number[] {
    const served = (i: number): number => (this.o.errorsCostCpu === true ? 1 : 1 - (this.errorRates[i] as number));
    return this.offered().map((x, i) => (x * served(i)) / (this.capacities[i] as number));
  }

  /** max / mean of the utilization of the endpoints in rotation (the Robinhood figure). */
  maxOverAvg(): number {
    const u = this.utilization().filter((_, i) => this.healthy[i]);
    return Math.max(...u) / (u.reduce((a, b) => a + b, 0) / u.length);
  }

  /** Shares of the published integer weights. */
  shares(): number[] {
    const total = this.weights.reduce((a, b) => a + b, 0);
    return this.weights.map((w) => w / total);
  }

  step(report = true): ClusterTick {
    this.now += this.tickMs;
    if (report) {
      const u = this.utilization();
      const offered = this.offered();
      const perUnit = this.o.rpsPerUnit ?? 100;
      this.keys.forEach((key, i) => {
        if (!this.healthy[i]) return;
        const noisy = (u[i] as number) * (1 + this.o.noise * (2 * this.rand() - 1));
        const rps = (offered[i] as number) * perUnit;
        const latencyMs = this.latencies[i];
        this.engine.observeSample('svc', key, {
          at: this.now,
          ...(this.reportsCpu[i] === true ? { cpu: Math.min(1, Math.max(0, noisy)) } : {}),
          ...(this.reportsTraffic[i] === true ? { rps, errors: rps * (this.errorRates[i] as number) } : {}),
          ...(latencyMs !== undefined ? { latencyMs } : {}),
        });
      });
    }
    const tick = this.engine.tick(this.now).clusters.get('svc') as ClusterTick;
    this.weights = this.keys.map((k) => tick.weights.get(k) as number);
    this.healthy = this.keys.map((k) => tick.health.get(k) === 'HEALTHY');
    this.last = tick;
    return tick;
  }
}
