import { rename, writeFile } from 'node:fs/promises';

let seq = 0;

/**
 * Replaces `path` with `text` as editors do (a new file beside it, then a rename), so a watcher
 * never reads half a file.
 */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}-${++seq}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
