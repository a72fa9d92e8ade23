/**
 * Test certificates made by the real `openssl` CLI (OpenSSL 3): a CA, and leaf certificates it
 * signs with the SANs a test asks for (`URI:spiffe://…`, `DNS:…`, `IP:127.0.0.1`). ECDSA P-256
 * (or RSA 2048), valid for two days; each file is PEM in the directory given.
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Registry } from 'prom-client';

const run = promisify(execFile);

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export interface TestCa extends CertFiles {
  readonly name: string;
  readonly dir: string;
  /** The keys of the CA and of what it issues. */
  readonly keyType: KeyType;
}

/** ECDSA P-256 (the default) or RSA 2048 (bench/reconnect-storm.ts --tls-key rsa). */
export type KeyType = 'ec' | 'rsa';

/** Whether the `openssl` CLI runs here (for describeRequiring). */
export function opensslFound(): { ok: boolean; detail: string } {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? { ok: true, detail: r.stdout.trim() } : { ok: false, detail: r.error?.message ?? r.stderr };
}

const KEY_ARGS: Record<KeyType, readonly string[]> = {
  ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
  rsa: ['-newkey', 'rsa:2048', '-nodes'],
};
/** How long what the helpers make is valid, unless a test asks for another. */
const DAYS = 2;

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', [...args], { timeout: 30_000 });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
  }
}

export async function makeCa(dir: string, name: string, keyType: KeyType = 'ec'): Promise<TestCa> {
  const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await openssl([
    'req', '-x509', ...KEY_ARGS[keyType], '-days', String(DAYS), '-keyout', files.key, '-out', files.cert, '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { ...files, name, dir, keyType };
}

/** A leaf certificate signed by `ca`, usable as server and client certificate, valid for `days` from now. */
export async function issue(ca: TestCa, name: string, sans: readonly string[], dir = ca.dir, days = DAYS): Promise<CertFiles> {
  const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await openssl([
    'req', '-x509', ...KEY_ARGS[ca.keyType], '-days', String(days), '-keyout', files.key, '-out', files.cert, '-subj', `/CN=${name}`,
    '-CA', ca.cert, '-CAkey', ca.key,
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
    '-addext', `subjectAltName=${sans.join(',')}`,
  ]);
  return files;
}

/**
 * Envoy bootstrap patch: the `fulcrum_xds` cluster (ADS and LRS) over TLS, trusting `ca` and
 * checking the server's DNS SAN `localhost`; with `client`, it presents that certificate (mTLS).
 */
export function envoyXdsTls(ca: string, client?: CertFiles): (bootstrap: Record<string, unknown>) => void {
  return (bootstrap) => {
    const statics = bootstrap.static_resources as { clusters: Record<string, unknown>[] };
    const xds = statics.clusters.find((c) => c.name === 'fulcrum_xds');
    if (!xds) throw new Error('bootstrap has no fulcrum_xds cluster');
    xds.transport_socket = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        sni: 'localhost',
        common_tls_context: {
          // grpc-js (node:http2) accepts only connections that negotiate h2 by ALPN.
          alpn_protocols: ['h2'],
          validation_context: {
            trusted_ca: { filename: ca },
            match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'localhost' } }],
          },
          ...(client ? { tls_certificates: [{ certificate_chain: { filename: client.cert }, private_key: { filename: client.key } }] } : {}),
        },
      },
    };
  };
}

/** fulcrum's refusal counter `fulcrum_grpc_auth_refused_total{surface,reason}`. */
export async function refusedCalls(fulcrum: { metrics: { registry: Registry } }, surface: string, reason: string): Promise<number> {
  const metric = await fulcrum.metrics.registry.getSingleMetric('fulcrum_grpc_auth_refused_total')?.get();
  return metric?.values.find((v) => v.labels.surface === surface && v.labels.reason === reason)?.value ?? 0;
}

/** A directory with a CA and a server certificate for `localhost` / 127.0.0.1 signed by it. */
export async function serverPki(dir: string): Promise<{ ca: TestCa; server: CertFiles }> {
  const ca = await makeCa(dir, 'ca');
  return { ca, server: await issue(ca, 'server', ['DNS:localhost', 'IP:127.0.0.1']) };
}
