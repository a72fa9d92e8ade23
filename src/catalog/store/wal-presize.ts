/**
 * The SQLite WAL file written out to a fixed size when the store opens, so that the commits after
 * it overwrite blocks the file already has instead of appending to it.
 *
 * Why: every write the admin API acknowledges waits for an fdatasync of the WAL (wal-sync.ts). A
 * commit that grows the file changed its size, so on ext4 (data=ordered) that fdatasync has to
 * commit the filesystem journal, which first writes out every file's dirty data of the same
 * journal transaction, other processes' included: on a disk shared with other work it took
 * 20–290 ms (strace of bench/admin-100k.ts, issue 13). An fdatasync of blocks overwritten in
 * place, size unchanged, flushes only those blocks (same minutes: append p99 35 ms, overwrite
 * p99 2–5 ms). SQLite itself never shrinks the WAL (journal_size_limit stays -1) and restarts it
 * from the start after each complete checkpoint, so once the file is this large the steady state
 * is overwrites; only the first ~200 commits after every start (the checkpoint interval, ~40 KiB
 * each) appended, and SQLite deletes the WAL when the last connection closes.
 *
 * Safe for SQLite: it finds the log's end by each frame's salt and checksum, never by the file's
 * size, so zeros past the last valid frame read as the end of the log (as the stale frames past
 * the end after a restart do). Only bytes past the file's current end are written, before any
 * write transaction of this process, and the store is one process's file.
 */
import { closeSync, fdatasync, fstatSync, openSync, writeSync } from 'node:fs';

/** ~200 one-endpoint commits (wal-checkpointer.ts CHECKPOINT_EVERY_COMMITS) of ~10 pages each. */
export const WAL_PRESIZE_BYTES = 8 * 1024 * 1024;

const CHUNK = 1024 * 1024;

/**
 * Writes zeros from the end of `walPath` up to `bytes` (nothing if it is that large already, or
 * absent: SQLite creates it). The data reaches the disk by an fdatasync off the event loop that
 * the first acknowledged write's own fsync then finds done; returns the bytes written.
 */
export function presizeWal(walPath: string, bytes = WAL_PRESIZE_BYTES): number {
  let fd: number;
  try {
    fd = openSync(walPath, 'r+');
  } catch {
    return 0;
  }
  let written = 0;
  try {
    const zeros = Buffer.alloc(Math.min(CHUNK, bytes));
    for (let at = fstatSync(fd).size; at < bytes; at += zeros.length) written += writeSync(fd, zeros, 0, Math.min(zeros.length, bytes - at), at);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  // Closed when the flush ends: a failure here only means the first commit's fsync does the work.
  fdatasync(fd, () => closeSync(fd));
  return written;
}
