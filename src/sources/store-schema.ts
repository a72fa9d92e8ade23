import { Type, type Static } from '@sinclair/typebox';
import { DEFAULT_ETCD_PREFIX, type StoreConfig } from '../catalog/store/store-config.js';
import { StringEnum } from './string-enum.js';

/** The config file's `store:` block: where desired state lives (SQLite on one node, etcd for several replicas). */

const Path = Type.String({ minLength: 1, maxLength: 4096 });
const EtcdUrl = Type.String({ pattern: '^https?://[^/\\s]+$', description: 'an etcd client URL, e.g. http://10.0.0.1:2379' });

export const StoreSchema = Type.Object(
  {
    kind: StringEnum(['sqlite', 'etcd']),
    auditKeepLast: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'audit entries kept, oldest deleted first (0: all); default 100000 on sqlite, 10000 on etcd' }),
    ),
    etcd: Type.Optional(
      Type.Object(
        {
          endpoints: Type.Array(EtcdUrl, { minItems: 1, maxItems: 32 }),
          prefix: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$', maxLength: 256 })),
          tls: Type.Optional(Type.Object({ ca: Type.Optional(Path), cert: Type.Optional(Path), key: Type.Optional(Path) }, { additionalProperties: false })),
          username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
          password: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
          passwordFile: Type.Optional(Path),
          writeTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000 })),
          compactEveryMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type RawStore = Static<typeof StoreSchema>;

export interface StoreProblem {
  readonly path: string;
  readonly message: string;
}

/** What the schema cannot say: which fields go together. */
export function storeProblems(raw: RawStore | undefined): StoreProblem[] {
  if (!raw) return [];
  const e = raw.etcd;
  const problems: StoreProblem[] = [];
  const at = (field: string, message: string): void => void problems.push({ path: `/store/${field}`, message });
  if (raw.kind === 'etcd' && !e) at('etcd', 'required when kind is etcd');
  if (raw.kind === 'sqlite' && e) at('etcd', 'only valid with kind etcd');
  if (!e) return problems;
  if (e.password !== undefined && e.passwordFile !== undefined) at('etcd/passwordFile', 'give password or passwordFile, not both');
  if (e.username !== undefined && e.password === undefined && e.passwordFile === undefined) at('etcd/username', 'needs password or passwordFile');
  if (e.username === undefined && (e.password !== undefined || e.passwordFile !== undefined)) at('etcd/username', 'required with a password');
  if ((e.tls?.cert === undefined) !== (e.tls?.key === undefined)) at('etcd/tls', 'cert and key go together');
  const https = e.endpoints.filter((u) => u.startsWith('https://')).length;
  if (https > 0 && https < e.endpoints.length) at('etcd/endpoints', 'mixes http and https URLs');
  if (https > 0 && e.tls?.ca === undefined) at('etcd/tls/ca', 'required with https endpoints');
  if (https === 0 && e.tls) at('etcd/tls', 'needs https endpoints');
  if (e.compactEveryMs !== undefined && e.compactEveryMs > 0 && e.compactEveryMs < 10_000) at('etcd/compactEveryMs', '0 (off) or at least 10000');
  return problems;
}

/** The validated block as settings (sqlite when absent). */
export function toStoreConfig(raw: RawStore | undefined): StoreConfig {
  const keep = raw?.auditKeepLast === undefined ? {} : { auditKeepLast: raw.auditKeepLast };
  if (!raw || raw.kind === 'sqlite' || !raw.etcd) return { kind: 'sqlite', ...keep };
  const { prefix, ...etcd } = raw.etcd;
  return { kind: 'etcd', etcd: { ...etcd, prefix: prefix ?? DEFAULT_ETCD_PREFIX }, ...keep };
}
