import { readFile } from 'node:fs/promises';
import { parseConfig, refuseNoDocument } from '../sources/config-file.js';
import type { OutputFormat } from './operator-commands.js';

/**
 * `fulcrum check --config FILE`: the same parse and validation `serve` does at start and at every
 * reload, without starting anything. Exit 0 when valid, 1 when not (the problems on stderr).
 */
export async function checkCommand(file: string, output: OutputFormat, io: { write(t: string): void; error(t: string): void }): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    io.error(`fulcrum check: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    refuseNoDocument(text, file);
    const { catalog, server, kubernetes } = parseConfig(text, file);
    const summary = {
      file,
      valid: true,
      clusters: catalog.clusters.length,
      listeners: catalog.listeners.length,
      nodeGroups: catalog.nodeGroups.length,
      xds: `${server.xds.address}:${server.xds.port}`,
      admin: `${server.admin.address}:${server.admin.port}`,
      kubernetes: kubernetes !== undefined,
    };
    if (output === 'json') io.write(`${JSON.stringify(summary, null, 2)}\n`);
    else io.write(`${file}: valid (${summary.clusters} clusters, ${summary.listeners} listeners, ${summary.nodeGroups} node groups; xDS on ${summary.xds}, admin on ${summary.admin}${summary.kubernetes ? ', Kubernetes discovery on' : ''})\n`);
    return 0;
  } catch (err) {
    if (output === 'json') io.write(`${JSON.stringify({ file, valid: false, error: (err as Error).message }, null, 2)}\n`);
    io.error(`${(err as Error).message}\n`);
    return 1;
  }
}
