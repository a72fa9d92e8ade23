import type { LrsAggregator } from '../../src/signals/lrs-aggregator.js';

/** A report applied, then what the aggregator hands over at the same time. */
export function applied(agg: LrsAggregator, ...args: Parameters<LrsAggregator['apply']>): ReturnType<LrsAggregator['take']> {
  agg.apply(...args);
  return agg.take(args[2]);
}
