/**
 * The order in which the outlier detector's verdicts take the room maxEjectedRatio leaves: worst
 * first, and between equally bad endpoints the smaller key. Position broke those ties before, so
 * which of two endpoints failing alike was ejected hung on the order the discovery listed them in
 * (an EndpointSlice reordered, a pod added before them), and a reordered set could eject the other.
 */
export interface RankedVerdict {
  readonly index: number;
  readonly severity: number;
}

/** Worst first; ties by key when `keys` (by position) are given, else by position (sort is stable). */
export function worstFirst(keys: readonly string[] | undefined): (a: RankedVerdict, b: RankedVerdict) => number {
  return (a, b) => {
    // Equal severities compared as such: two stalls against peers answering at once are both
    // Infinity, and Infinity − Infinity is NaN, which sort takes for a tie left in position order.
    if (a.severity !== b.severity || keys === undefined) return a.severity === b.severity ? 0 : b.severity - a.severity;
    const ka = keys[a.index] as string;
    const kb = keys[b.index] as string;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}
