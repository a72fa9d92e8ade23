/**
 * Text that is not valid Unicode: a JSON or YAML escape such as "\ud800" makes a JavaScript string
 * with a lone UTF-16 surrogate, which no UTF-8 encoding represents. protobufjs writes it as the
 * bytes ED A0 80 all the same, and Envoy refuses a message whose string field is not UTF-8: under
 * SotW the whole response is refused, so one such route prefix or locality held every later
 * change of its type back from every proxy. SQLite stores it as U+FFFD instead, so two localities
 * that differed only there became one. Such text is refused where it enters, naming where it is.
 */

/** Where the first string (or object key) of `value` with an unpaired surrogate is, as a JSON pointer; undefined when there is none. */
export function unpairedSurrogateAt(value: unknown, base = ''): { readonly path: string; readonly text: string } | undefined {
  // An explicit stack, not recursion: a hostile body nested 100,000 deep must not overflow it.
  const stack: { readonly v: unknown; readonly path: string }[] = [{ v: value, path: base }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const { v, path } = top;
    if (typeof v === 'string') {
      if (illFormed(v)) return { path, text: v };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: `${path}/${i}` });
    } else if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i] as string;
        const at = `${path}/${escapePointer(key)}`;
        if (illFormed(key)) return { path: at, text: key };
        stack.push({ v: (v as Record<string, unknown>)[key], path: at });
      }
    }
  }
  return undefined;
}

/** The refusal's message: where the first unpaired surrogate is in the text, and why it matters. */
export function unpairedSurrogateMessage(text: string): string {
  // The same test as illFormed's, for where: with the u flag the index still counts UTF-16 units.
  const at = LONE_SURROGATE.exec(text)?.index ?? -1;
  const unit = text.charCodeAt(at).toString(16);
  return `contains an unpaired UTF-16 surrogate (\\u${unit} at character ${at}): not valid UTF-8, which Envoy requires of every string`;
}

/** Whether JSON or YAML text holds an escape that may make a surrogate (\uD800–\uDFFF, or YAML's \U0000D800–\U0000DFFF): only then need its value be walked. */
export const mayHoldSurrogateEscape = (text: string): boolean => SURROGATE_ESCAPE.test(text);

/** With the u flag a pair is one code point, so \p{Cs} (surrogates) matches only an unpaired one (String.isWellFormed is newer than this build's lib). */
const LONE_SURROGATE = /\p{Cs}/u;
const illFormed = (s: string): boolean => LONE_SURROGATE.test(s);

const SURROGATE_ESCAPE = /\\(?:u|U0000)[dD][89a-fA-F]/;

/** RFC 6901: "~" and "/" in a key. */
const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');
