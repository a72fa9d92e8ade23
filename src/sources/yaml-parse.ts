/**
 * A config file's YAML to a plain value: the one parse every reader of a config file uses, inline
 * here or on a worker thread (yaml-off-thread.ts, which runs the same call with these options).
 */
import { parseDocument, type DocumentOptions, type ParseOptions, type SchemaOptions, type ToJSOptions } from 'yaml';

/** Duplicate keys are an error, not "the last one wins"; errors name their line and column. */
export const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions = { prettyErrors: true, uniqueKeys: true };

/** The document's value (an empty document reads as {}), or the first line of each of its first `maxErrors` errors. */
export type YamlParse = { readonly value: unknown } | { readonly errors: readonly string[] };

export function parseYaml(text: string, maxErrors: number): YamlParse {
  const doc = parseDocument(text, YAML_OPTIONS);
  if (doc.errors.length > 0) return { errors: doc.errors.slice(0, maxErrors).map((e) => e.message.split('\n')[0] as string) };
  try {
    return { value: doc.toJS() ?? {} };
  } catch (err) {
    // An alias without its anchor, or too many aliases (the library's guard against expansion
    // bombs), fails only here: a problem of the document like the others, not an exception.
    return { errors: [(err as Error).message.split('\n')[0] as string] };
  }
}
