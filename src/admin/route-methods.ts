/**
 * Which methods each registered path answers, so that a request the router cannot match is told
 * apart: a path no route has is a 404, a path that exists under other methods is a 405 with
 * `Allow` listing them (RFC 9110 §15.5.6), and OPTIONS on such a path is a 204 with `Allow`.
 * fastify itself answers all of these with its 404 handler.
 *
 * Fed from fastify's onRoute hook with route URLs (`/v1/clusters/:name`, `/docs/*`); matched
 * against request paths segment by segment.
 */
export class RouteMethods {
  private readonly routes = new Map<string, { readonly pattern: RegExp; readonly methods: Set<string> }>();

  add(url: string, methods: string | readonly string[]): void {
    let entry = this.routes.get(url);
    if (!entry) {
      entry = { pattern: patternOf(url), methods: new Set() };
      this.routes.set(url, entry);
    }
    for (const m of typeof methods === 'string' ? [methods] : methods) entry.methods.add(m.toUpperCase());
  }

  /** The methods some route answers at `path` (without its query string), sorted; empty when none. */
  allowed(path: string): string[] {
    const found = new Set<string>();
    for (const { pattern, methods } of this.routes.values()) if (pattern.test(path)) for (const m of methods) found.add(m);
    return [...found].sort();
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `:param` matches one non-empty segment, a trailing `*` anything; the rest literally. */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : escape(segment)))
    .join('/');
  return new RegExp(`^${source}$`);
}
