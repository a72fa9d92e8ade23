/**
 * Names of bearer tokens, for the audit log: who changed what, without the secret or any hash of it.
 *
 * A configured token entry is either `<name>:<secret>` or a bare `<secret>`. The separator is a
 * colon because it never occurs in the usual token alphabets (hex, base64, base64url, JWTs), so a
 * bare secret from `openssl rand -hex 32` or a JWT is never split by mistake. A bare secret gets a
 * label derived from where it is configured, `<role>-<n>` (its 1-based position among that role's
 * tokens: the environment variable's first, then the token file's): stable while the
 * configuration is, and saying nothing about the secret.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface NamedToken {
  readonly name: string;
  readonly secret: string;
}

/**
 * Splits one configured entry; `fallback` is the label of a bare secret, and names the entry in
 * errors. An error never repeats the entry's text: what stands before a ':' may be part of a
 * secret that holds one (`p@ss:word`), and a name with nothing after it (`s3cret:`) is the secret.
 */
export function namedToken(entry: string, fallback: string): NamedToken {
  const colon = entry.indexOf(':');
  if (colon < 0) return { name: fallback, secret: entry };
  const name = entry.slice(0, colon);
  const secret = entry.slice(colon + 1);
  const which = fallback === '' ? 'a token entry' : `token entry ${fallback}`;
  if (!NAME.test(name)) {
    throw new Error(`${which}: what stands before its first ':' must be a name of 1-64 letters, digits, '.', '_' or '-' (entries are <name>:<token> or <token>; a token holding ':' needs a name first)`);
  }
  if (secret.length === 0) throw new Error(`${which}: nothing follows its ':' (entries are <name>:<token> or <token>)`);
  return { name, secret };
}

/** Every role's entries named; a name used twice is an error (the audit log could not tell them apart). */
export function nameTokens<R extends string>(byRole: readonly { role: R; entries: readonly string[] }[]): { role: R; tokens: NamedToken[] }[] {
  const seen = new Map<string, R>();
  return byRole.map(({ role, entries }) => {
    const tokens = entries.filter((e) => e.length > 0).map((e, i) => namedToken(e, `${role}-${i + 1}`));
    for (const t of tokens) {
      const other = seen.get(t.name);
      if (other !== undefined) throw new Error(`token name ${JSON.stringify(t.name)} is used by two tokens (${other} and ${role}); names must be unique`);
      seen.set(t.name, role);
    }
    return { role, tokens };
  });
}

/** The secret of a configured entry (what a client sends): the CLI reads the same variables. */
export function tokenSecret(entry: string): string {
  return namedToken(entry, '').secret;
}
