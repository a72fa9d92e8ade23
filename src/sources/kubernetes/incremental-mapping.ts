/**
 * slicesToClusters (mapping.ts) across a stream of views: each view gives what slicesToClusters
 * would, and a cluster whose content did not change is the very object of the view before.
 *
 * Every stage after discovery finds changed clusters by identity (catalog/changed-clusters.ts).
 * Mapping every Service afresh on each event made every discovered cluster new whenever one pod
 * became ready: at 1,000 Services × 20 endpoints each such change re-translated and re-installed
 * the whole fleet, ~200 ms of fulcrum's only event loop (bench/kube-churn.ts, RESULTS "kube33").
 *
 * A Service is mapped again only when its object, its slices (the informers' cache keeps an
 * unchanged object the same object) or the node topology are others than last time; a cluster
 * mapped again that equals the last one is the last one. Pure: no I/O, no clock.
 */
import { isDeepStrictEqual } from 'node:util';
import { sameItems } from '../../catalog/changed-clusters.js';
import {
  groupSlices,
  joinServices,
  selectedServices,
  serviceClusters,
  type EndpointSliceLike,
  type KubernetesContribution,
  type MappingOptions,
  type ServiceClusters,
  type ServiceLike,
} from './mapping.js';

interface Mapped {
  readonly service: ServiceLike;
  readonly slices: readonly EndpointSliceLike[];
  readonly nodes: MappingOptions['nodes'];
  readonly share: ServiceClusters;
}

const NO_SLICES: readonly EndpointSliceLike[] = [];

export class IncrementalMapping {
  private mapped = new Map<string, Mapped>();
  private last: KubernetesContribution | undefined;

  /** The view of these objects; the view before itself when nothing in it changed. */
  map(services: Iterable<ServiceLike>, slices: Iterable<EndpointSliceLike>, options: MappingOptions = {}): KubernetesContribution {
    const slicesByService = groupSlices(slices);
    const selected = selectedServices(services);
    const next = new Map<string, Mapped>();
    let changed = this.last === undefined || selected.length !== this.mapped.size;
    for (const { key, service } of selected) {
      const old = this.mapped.get(key);
      const m = this.mappedAgain(old, service, slicesByService.get(key) ?? NO_SLICES, options);
      if (m.share !== old?.share) changed = true;
      next.set(key, m);
    }
    this.mapped = next;
    if (!changed && this.last !== undefined) return this.last;
    this.last = joinServices(selected.map(({ key }) => (next.get(key) as Mapped).share));
    return this.last;
  }

  private mappedAgain(old: Mapped | undefined, service: ServiceLike, slices: readonly EndpointSliceLike[], options: MappingOptions): Mapped {
    if (old !== undefined && old.service === service && old.nodes === options.nodes && sameItems(old.slices, slices)) return old;
    const fresh = serviceClusters(service, slices, options);
    return { service, slices, nodes: options.nodes, share: old === undefined ? fresh : keptShare(old.share, fresh) };
  }
}

/**
 * `fresh` with every part equal to `old`'s as `old`'s: its clusters, and its hash policy (the
 * catalog merge keeps a routed listener while its policies are the same objects); `old` itself
 * when it is all equal.
 */
function keptShare(old: ServiceClusters, fresh: ServiceClusters): ServiceClusters {
  const byName = new Map(old.clusters.map((c) => [c.name, c]));
  const clusters = fresh.clusters.map((c) => {
    const before = byName.get(c.name);
    return before !== undefined && isDeepStrictEqual(before, c) ? before : c;
  });
  const hashPolicy = isDeepStrictEqual(old.hashPolicy, fresh.hashPolicy) ? old.hashPolicy : fresh.hashPolicy;
  const warnings = isDeepStrictEqual(old.warnings, fresh.warnings) ? old.warnings : fresh.warnings;
  if (sameItems(clusters, old.clusters) && hashPolicy === old.hashPolicy && warnings === old.warnings) return old;
  return { clusters, hashPolicy, warnings };
}
