import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import YAML from 'yaml';
import { enumProblem } from '../string-enum.js';

/**
 * An annotation's `{...}` value read as one of the config file's blocks (JSON or flow YAML) and
 * checked by the config file's own schema for it: the block, or why not (one line, for a warning).
 */
export function annotationBlock(text: string, schema: TSchema): { readonly block: unknown } | { readonly problem: string } {
  let block: unknown;
  try {
    block = YAML.parse(text);
  } catch (err) {
    return { problem: `not JSON or YAML (${(err as Error).message.split('\n')[0]})` };
  }
  const first = Value.Errors(schema, block).First();
  if (first) return { problem: `${first.path || '/'} ${enumProblem(first) ?? first.message}` };
  return { block };
}
