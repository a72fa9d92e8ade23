import { setFlagsFromString } from 'node:v8';
import type { ProxyRecord } from './proxy-status.js';

/**
 * CSDS `node_matchers` (envoy.config.common.matcher.v3.NodeMatcher): node_id as a whole
 * StringMatcher and node_metadatas as StructMatchers, compiled once per request. A matcher
 * fulcrum cannot honour (a `custom` string matcher, a regex it cannot run in linear time) is
 * refused with a gRPC status rather than read as "every node" (review: a suffix matcher selected
 * every proxy).
 */

/** gRPC status codes used here. */
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

/** A node_matchers entry that cannot be honoured: its gRPC status code and message. */
export class MatcherError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface StringMatcherSpec {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: { regex?: string };
  custom?: unknown;
  ignore_case?: boolean;
}

interface DoubleMatcherSpec {
  exact?: number;
  range?: { start?: number; end?: number };
}

export interface ValueMatcherSpec {
  null_match?: unknown;
  double_match?: DoubleMatcherSpec;
  string_match?: StringMatcherSpec;
  bool_match?: boolean;
  present_match?: boolean;
  list_match?: { one_of?: ValueMatcherSpec };
  or_match?: { value_matchers?: ValueMatcherSpec[] };
}

export interface NodeMatcherSpec {
  node_id?: StringMatcherSpec;
  node_metadatas?: { path?: { key?: string }[]; value?: ValueMatcherSpec }[];
}

type Predicate<T> = (value: T) => boolean;

/** Where a matcher's compiler says something operators should know (once: see linearRegexes). */
export type Warn = (message: string) => void;

/** Without a logger, Node's own warning channel (stderr), as the store's default listeners do. */
const emitWarning: Warn = (message) => process.emitWarning(message, { code: 'FULCRUM_LINEAR_REGEXP' });

/** The request's matchers as one predicate: a node any of them selects (none: every node). */
export function compileNodeMatchers(specs: readonly NodeMatcherSpec[] | undefined, warn: Warn = emitWarning): Predicate<Pick<ProxyRecord['node'], 'id' | 'metadata'>> {
  const each = (specs ?? []).map((spec) => compileNodeMatcher(spec, warn));
  if (each.length === 0) return () => true;
  return (node) => each.some((m) => m(node));
}

/** node_id (if set) and every node_metadatas entry must match. */
function compileNodeMatcher(spec: NodeMatcherSpec, warn: Warn): Predicate<Pick<ProxyRecord['node'], 'id' | 'metadata'>> {
  const id = spec.node_id ? compileStringMatcher(spec.node_id, warn) : undefined;
  const metadata = (spec.node_metadatas ?? []).map((m) => {
    const path = (m.path ?? []).map((p) => p.key ?? '');
    if (path.length === 0) throw new MatcherError(INVALID_ARGUMENT, 'a node_metadatas matcher needs a path');
    if (!m.value) throw new MatcherError(INVALID_ARGUMENT, 'a node_metadatas matcher needs a value');
    const value = compileValueMatcher(m.value, warn);
    return (meta: Record<string, unknown>): boolean => value(lookup(meta, path));
  });
  return (node) => (id === undefined || id(node.id)) && metadata.every((m) => m(node.metadata));
}

/** The value at `path` in the metadata (undefined when a step is missing or not a struct). */
function lookup(meta: Record<string, unknown>, path: readonly string[]): unknown {
  let at: unknown = meta;
  for (const key of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at) || !Object.prototype.hasOwnProperty.call(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** envoy.type.matcher.v3.ValueMatcher over a metadata value as JSON (Struct → object, ListValue → array). */
function compileValueMatcher(spec: ValueMatcherSpec, warn: Warn): Predicate<unknown> {
  if (spec.null_match !== undefined) return (v) => v === null;
  if (spec.double_match !== undefined) return compileDoubleMatcher(spec.double_match);
  if (spec.string_match !== undefined) {
    const s = compileStringMatcher(spec.string_match, warn);
    return (v) => typeof v === 'string' && s(v);
  }
  if (spec.bool_match !== undefined) return (v) => v === spec.bool_match;
  // Envoy: a primitive value present (or absent, for false); a struct or list never matches.
  if (spec.present_match !== undefined) return (v) => (typeof v !== 'object' || v === null) && (v !== undefined) === spec.present_match;
  if (spec.list_match !== undefined) {
    if (!spec.list_match.one_of) throw new MatcherError(INVALID_ARGUMENT, 'a list_match needs one_of');
    const one = compileValueMatcher(spec.list_match.one_of, warn);
    return (v) => Array.isArray(v) && v.some(one);
  }
  if (spec.or_match !== undefined) {
    const any = (spec.or_match.value_matchers ?? []).map((m) => compileValueMatcher(m, warn));
    return (v) => any.some((m) => m(v));
  }
  throw new MatcherError(INVALID_ARGUMENT, 'a ValueMatcher sets none of its match fields');
}

function compileDoubleMatcher(spec: DoubleMatcherSpec): Predicate<unknown> {
  if (spec.range !== undefined) {
    const start = spec.range.start ?? 0;
    const end = spec.range.end ?? 0;
    return (v) => typeof v === 'number' && v >= start && v < end;
  }
  const exact = spec.exact ?? 0;
  return (v) => v === exact;
}

/** envoy.type.matcher.v3.StringMatcher; ignore_case applies to all but safe_regex (as in Envoy). */
export function compileStringMatcher(spec: StringMatcherSpec, warn: Warn = emitWarning): Predicate<string> {
  if (spec.safe_regex !== undefined) return compileSafeRegex(spec.safe_regex.regex ?? '', warn);
  if (spec.custom !== undefined) throw new MatcherError(UNIMPLEMENTED, 'custom string matchers are not supported');
  const fold = spec.ignore_case === true ? (s: string): string => s.toLowerCase() : (s: string): string => s;
  const test = plainTest(spec);
  if (!test) throw new MatcherError(INVALID_ARGUMENT, 'a StringMatcher sets none of exact, prefix, suffix, contains, safe_regex');
  const [op, pattern] = test;
  const p = fold(pattern);
  if (op === 'exact') return (s) => fold(s) === p;
  if (op === 'prefix') return (s) => fold(s).startsWith(p);
  if (op === 'suffix') return (s) => fold(s).endsWith(p);
  return (s) => fold(s).includes(p);
}

/** The plain (non-regex) member of the match_pattern oneof that is set, if one is. */
function plainTest(spec: StringMatcherSpec): ['exact' | 'prefix' | 'suffix' | 'contains', string] | undefined {
  for (const op of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    const value = spec[op];
    if (value !== undefined) return [op, value];
  }
  return undefined;
}

/** Longest regex accepted: the inputs are node ids and metadata strings, bounded already. */
const MAX_REGEX_LENGTH = 1_024;

let linearEngine: boolean | undefined;

/** V8's flag for its linear-time engine (unknown to ESLint's RegExp checks, hence a name). */
const LINEAR = 'l';

/**
 * Node has no RE2, and V8's default engine backtracks: a regex from a CSDS client could hold the
 * event loop for minutes. V8's linear-time engine (the `l` flag; see linearRegexes) runs only what it
 * can run without backtracking, in time linear in pattern × input, and refuses the rest
 * (backreferences, lookaround, large counted repetition), as RE2 has no backreferences or
 * lookaround either. Without it, safe_regex is UNIMPLEMENTED. Envoy matches the whole string.
 */
function compileSafeRegex(regex: string, warn: Warn): Predicate<string> {
  if (!linearRegexes(warn)) throw new MatcherError(UNIMPLEMENTED, 'safe_regex matchers are not supported: this Node has no linear-time regex engine');
  if (regex.length > MAX_REGEX_LENGTH) throw new MatcherError(INVALID_ARGUMENT, `a safe_regex of ${regex.length} characters is over ${MAX_REGEX_LENGTH}`);
  let re: RegExp;
  try {
    // Alone first: a pattern such as "a)|(b" would otherwise close the anchoring group itself.
    new RegExp(regex, LINEAR);
    re = new RegExp(`^(?:${regex})$`, LINEAR);
  } catch (err) {
    throw new MatcherError(INVALID_ARGUMENT, `safe_regex ${JSON.stringify(regex)} cannot be run in linear time: ${(err as Error).message}`);
  }
  return (s) => re.test(s);
}

/** The node flag that turns V8's linear-time engine on. */
export const LINEAR_REGEXP_FLAG = '--enable-experimental-regexp-engine';

/**
 * Whether V8's linear-time engine is on. `npm start`, the image and the manifests start node with
 * LINEAR_REGEXP_FLAG (NODE_OPTIONS may not carry it). Started otherwise (the bare `fulcrum` bin, a
 * test runner), the flag is set now, at first use: Node documents setting V8 flags after start as
 * unsupported (V8 may have made choices the flag would have changed), so that fallback is said
 * once, as is an engine that cannot be had at all.
 */
function linearRegexes(warn: Warn): boolean {
  if (linearEngine !== undefined) return linearEngine;
  linearEngine = linearFlagOn();
  if (linearEngine) return true;
  try {
    setFlagsFromString(LINEAR_REGEXP_FLAG);
    linearEngine = linearFlagOn();
  } catch {
    linearEngine = false;
  }
  warn(
    linearEngine
      ? `node was started without ${LINEAR_REGEXP_FLAG}: V8's linear-time regex engine was turned on at the first CSDS safe_regex matcher, which Node does not support after start; start node with the flag (as npm start, the image and the manifests do)`
      : `V8's linear-time regex engine is not available (start node with ${LINEAR_REGEXP_FLAG}): CSDS safe_regex matchers are refused as UNIMPLEMENTED`,
  );
  return linearEngine;
}

/** A RegExp with the linear flag compiles only while the engine is on. */
function linearFlagOn(): boolean {
  try {
    return new RegExp('a', LINEAR).test('a');
  } catch {
    return false;
  }
}
