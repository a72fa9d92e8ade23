/**
 * Versioned schema of the durable store.
 *
 * `MIGRATIONS[i]` takes the schema from version `i` to version `i + 1`. The list is append-only:
 * a released migration is never edited (a database in the field has already run it); a change is
 * a new entry at the end. `migrate()` runs at open, inside one IMMEDIATE transaction, so a crash
 * mid-migration leaves the database at the previous version and two processes opening the same
 * file cannot both migrate it.
 */
import type Database from 'better-sqlite3';

const HEALTH = `'UNKNOWN','HEALTHY','UNHEALTHY','DRAINING','TIMEOUT','DEGRADED'`;
const OWNER = `'file','api','kubernetes'`;

export const MIGRATIONS: readonly string[] = [
  // 1: initial schema.
  `
  -- Store-wide revision counter. Every committed change takes the next value, and the changed
  -- resource records it as its revision: revisions are monotonic per resource and never reused,
  -- even across delete + re-create (so a stale If-Match cannot match a re-created resource).
  CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) STRICT;
  INSERT INTO store_meta (key, value) VALUES ('revision', 0);

  -- spec: the domain Cluster minus name and endpoints, as canonical JSON (lbPolicy, leastRequest,
  -- ringHash, maglev, connectTimeoutMs, http2, weighting, safety, probe, ...). New optional
  -- domain fields need no migration; renamed or reshaped ones do (rewrite the JSON in SQL).
  CREATE TABLE clusters (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    owner      TEXT NOT NULL CHECK (owner IN (${OWNER})),
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;

  CREATE TABLE endpoints (
    cluster    TEXT NOT NULL REFERENCES clusters (name) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    weight     INTEGER NOT NULL CHECK (weight >= 1),
    priority   INTEGER NOT NULL CHECK (priority >= 0),
    region     TEXT NOT NULL,
    zone       TEXT NOT NULL,
    sub_zone   TEXT NOT NULL,
    health     TEXT NOT NULL CHECK (health IN (${HEALTH})),
    state      TEXT NOT NULL CHECK (state IN ('active','draining','disabled')),
    owner      TEXT NOT NULL CHECK (owner IN (${OWNER})),
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (cluster, address, port)
  ) STRICT;

  -- spec: the domain Listener minus name (kind, address, port, routes), canonical JSON.
  CREATE TABLE listeners (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    owner      TEXT NOT NULL CHECK (owner IN (${OWNER})),
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;

  -- spec: the domain NodeGroup minus nodeCluster ({ listeners, clusters }), canonical JSON.
  CREATE TABLE node_groups (
    node_cluster TEXT PRIMARY KEY,
    spec         TEXT NOT NULL CHECK (json_valid(spec)),
    owner        TEXT NOT NULL CHECK (owner IN (${OWNER})),
    revision     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
  ) STRICT;

  CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    name     TEXT NOT NULL,
    revision INTEGER NOT NULL,
    before   TEXT CHECK (before IS NULL OR json_valid(before)),
    after    TEXT CHECK (after IS NULL OR json_valid(after))
  ) STRICT;

  -- Last weights the engine published, so a restart resumes from them instead of sloshing
  -- traffic back to static weights. Not foreign-keyed: a cluster's weights are dropped with it
  -- by the store, but the engine may publish for clusters the store does not hold.
  CREATE TABLE published_weights (
    cluster  TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    weight   INTEGER NOT NULL CHECK (weight >= 0),
    at       TEXT NOT NULL,
    PRIMARY KEY (cluster, endpoint)
  ) STRICT;
  `,
  // 2: operator overrides on Kubernetes-discovered clusters and endpoints (override-records.ts).
  // Not foreign-keyed: the store does not hold discovered clusters, and an override outlives its
  // target so that a Service or pod that comes back is treated the same way again.
  `
  CREATE TABLE overrides (
    name       TEXT PRIMARY KEY,
    target     TEXT NOT NULL CHECK (json_valid(target)),
    value      TEXT NOT NULL CHECK (json_valid(value)),
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;
  `,
  // 3: a bounded summary of each large audit record (audit-summary.ts), written with it, so that
  // pages of the log do not read megabytes of endpoint lists. NULL on older and small records.
  `
  ALTER TABLE audit ADD COLUMN summary TEXT CHECK (summary IS NULL OR json_valid(summary));
  `,
  // 4: a big write's before and after stored deflated (packed-text.ts), with before/after then
  // NULL and packed_bytes their size as text. NULL on every other row.
  `
  ALTER TABLE audit ADD COLUMN before_packed BLOB;
  ALTER TABLE audit ADD COLUMN after_packed BLOB;
  ALTER TABLE audit ADD COLUMN packed_bytes INTEGER CHECK (packed_bytes IS NULL OR packed_bytes >= 0);
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database was written by a newer fulcrum; opening it could corrupt data this build does not know. */
export class SchemaVersionError extends Error {
  constructor(
    readonly file: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `${file}: schema version ${found} is newer than this fulcrum supports (${supported}); ` +
        'run a newer fulcrum or restore a backup made by this version',
    );
    this.name = 'SchemaVersionError';
  }
}

/** Applies every pending migration in one IMMEDIATE transaction. Returns [from, to] versions. */
export function migrate(db: Database.Database, file: string, migrations: readonly string[] = MIGRATIONS): [number, number] {
  const run = db.transaction((): [number, number] => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      applied_at TEXT NOT NULL
    ) STRICT`);
    const row = db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as { v: number };
    const current = row.v;
    if (current > migrations.length) throw new SchemaVersionError(file, current, migrations.length);
    const insert = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (let v = current; v < migrations.length; v++) {
      db.exec(migrations[v] as string);
      insert.run(v + 1, new Date().toISOString());
    }
    return [current, migrations.length];
  });
  return run.immediate();
}
