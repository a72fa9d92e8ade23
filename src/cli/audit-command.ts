import { SHAPES } from './api-shapes.js';
import type { CommandContext } from './operator-commands.js';
import { formatTable } from './table.js';
import { UsageError } from './usage-error.js';

/** `fulcrum audit [--limit N]`: who changed what, newest first (GET /v1/audit). */

interface AuditEntryView {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly kind: string;
  readonly name: string;
  readonly changed?: readonly string[];
  readonly summarized?: { readonly bytes: number; readonly endpoints?: { readonly before: number; readonly after: number } };
}

interface AuditPageView {
  readonly entries: readonly AuditEntryView[];
  readonly nextBefore?: number;
}

function limitOf(text: string | undefined): number {
  if (text === undefined) return 20;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--limit must be an integer from 1 to 1000, got ${JSON.stringify(text)}`);
  return n;
}

function what(e: AuditEntryView): string {
  const endpoints = e.summarized?.endpoints;
  const changed = e.changed && e.changed.length > 0 ? e.changed.join(', ') : '-';
  return endpoints ? `${changed} (endpoints ${endpoints.before} -> ${endpoints.after})` : changed;
}

export async function auditCommand({ client, output, write }: CommandContext, limitText: string | undefined): Promise<number> {
  const page = (await client.get(`/v1/audit?limit=${limitOf(limitText)}`, SHAPES.audit)).body as AuditPageView;
  if (output === 'json') {
    write(`${JSON.stringify(page, null, 2)}\n`);
    return 0;
  }
  const rows = page.entries.map((e) => [String(e.id), e.at, e.actor, e.action, e.kind, e.name, what(e)]);
  write(formatTable(['ID', 'AT', 'ACTOR', 'ACTION', 'KIND', 'NAME', 'CHANGED'], rows));
  if (page.nextBefore !== undefined) write(`(older entries: GET /v1/audit?before=${page.nextBefore})\n`);
  return 0;
}
