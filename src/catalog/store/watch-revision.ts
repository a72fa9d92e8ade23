/**
 * Which revision a watch response proves the watcher has been sent every event up to.
 *
 * Not its header's: etcd stamps a response with its current revision, and a watcher that starts
 * in the past (a new watch after a listing, or one resumed after a broken stream) is replayed the
 * gap in responses of at most 1,000 revisions, about 100 ms apart, every one stamped with the
 * revision etcd had reached (server/storage/mvcc watchable_store.go syncWatchers). A mirror that
 * took the stamp claimed revisions whose events were still to come. A response's own events are
 * proof, and so is a response without events: etcd sends those only as progress notifications,
 * and only to a watcher that has been sent everything (progressIfSync, etcd 3.4.24 / 3.5.8 on).
 */
export function provenRevision(eventRevisions: readonly number[], headerRevision: number): number {
  // Events come in revision order; the last is the highest (no spread: a replay response may hold
  // more events than a call takes arguments).
  const last = eventRevisions.at(-1);
  return last === undefined ? headerRevision : last;
}

/**
 * Whether waiters wait on revisions the watch may never bring an event for (another prefix's
 * writes, or a transaction that changed nothing) beyond what the mirror applied and what a mark
 * already covers: then the mirror writes a mark of its own (etcd-mirror.ts).
 */
export function needsMark(waiting: readonly number[], applied: number, marked: number): boolean {
  const covered = Math.max(applied, marked);
  return waiting.some((revision) => revision > covered);
}
