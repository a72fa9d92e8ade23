import { readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import YAML from 'yaml';
import { startControlPlane, type ControlPlane } from '../test/kubernetes/control-plane.js';

/**
 * A Kubernetes run for the memory and start-up benches (`--kube`): a real etcd + kube-apiserver
 * (the test harness, `.tools/bin`), seeded with `services` Services labelled for fulcrum, each with
 * one EndpointSlice of `endpoints` endpoints, and a copy of `baseConfig` that enables the
 * Kubernetes source against it, as the Kubernetes deployment runs.
 */
export interface KubeRun {
  readonly configPath: string;
  stop(): Promise<void>;
}

/** One request to the API server with the control plane's token; rejects on a status ≥ 300. */
export function apiRequest(cp: ControlPlane, method: string, path: string, body: object, contentType = 'application/json'): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, cp.server),
      { method, headers: { authorization: `Bearer ${cp.token}`, 'content-type': contentType }, rejectUnauthorized: false },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => ((res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export const benchServiceName = (s: number): string => `svc-${s}`;
export const benchSliceName = (s: number): string => `${benchServiceName(s)}-a`;
export const benchEndpointAddress = (s: number, e: number): string => `10.${s >> 8}.${s & 255}.${e + 1}`;

/**
 * Namespace `bench`, with `services` headless Services labelled for fulcrum, each with one
 * EndpointSlice (benchSliceName) of `endpoints` ready endpoints on port 8080, `parallel` requests
 * at a time.
 */
export async function seedServices(cp: ControlPlane, services: number, endpoints: number, parallel = 1): Promise<void> {
  await apiRequest(cp, 'POST', '/api/v1/namespaces', { metadata: { name: 'bench' } });
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let s = next++; s < services; s = next++) await seedOne(cp, s, endpoints);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

async function seedOne(cp: ControlPlane, s: number, endpoints: number): Promise<void> {
  const name = benchServiceName(s);
  await apiRequest(cp, 'POST', '/api/v1/namespaces/bench/services', {
    metadata: { name, labels: { 'fulcrum.io/balance': 'true' } },
    // Headless: the test API server's service range (/24) holds 253 cluster IPs, and fulcrum
    // reads only the Service's labels and its EndpointSlices.
    spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] },
  });
  await apiRequest(cp, 'POST', '/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices', {
    metadata: { name: benchSliceName(s), labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: Array.from({ length: endpoints }, (_, e) => ({ addresses: [benchEndpointAddress(s, e)], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
}

export async function startKubeRun(baseConfig: string, services = 20, endpoints = 10): Promise<KubeRun> {
  const cp = await startControlPlane();
  try {
    await seedServices(cp, services, endpoints);
    const config = YAML.parse(await readFile(baseConfig, 'utf8')) as Record<string, unknown>;
    config.kubernetes = { enabled: true, kubeconfig: cp.kubeconfigPath };
    const configPath = join(cp.dir, 'fulcrum-kube.yaml');
    await writeFile(configPath, YAML.stringify(config));
    return { configPath, stop: () => cp.stop() };
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
