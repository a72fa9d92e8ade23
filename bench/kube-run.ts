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

function apiPost(cp: ControlPlane, path: string, body: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(path, cp.server),
      { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/json' }, rejectUnauthorized: false },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => ((res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`POST ${path}: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function seed(cp: ControlPlane, services: number, endpoints: number): Promise<void> {
  await apiPost(cp, '/api/v1/namespaces', { metadata: { name: 'bench' } });
  for (let s = 0; s < services; s++) {
    const name = `svc-${s}`;
    await apiPost(cp, '/api/v1/namespaces/bench/services', {
      metadata: { name, labels: { 'fulcrum.io/balance': 'true' } },
      // Headless: the test API server's service range (/24) holds 253 cluster IPs, and fulcrum
      // reads only the Service's labels and its EndpointSlices.
      spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] },
    });
    await apiPost(cp, '/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices', {
      metadata: { name: `${name}-a`, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: Array.from({ length: endpoints }, (_, e) => ({ addresses: [`10.${s >> 8}.${s & 255}.${e + 1}`], conditions: { ready: true } })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
  }
}

export async function startKubeRun(baseConfig: string, services = 20, endpoints = 10): Promise<KubeRun> {
  const cp = await startControlPlane();
  try {
    await seed(cp, services, endpoints);
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
