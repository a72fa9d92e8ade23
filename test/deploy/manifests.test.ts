/**
 * Offline checks of the Kubernetes manifests (deploy/kubernetes, examples/kubernetes).
 *
 * 1. Every YAML file parses; each one is a Kustomization, a Kubernetes object, a patch or a
 *    generator input that some kustomization.yaml references (no orphan files that never deploy).
 * 2. Every complete Kubernetes object validates against the Kubernetes OpenAPI schema
 *    (kubernetes-models: types, required fields, enums, formats; it does NOT reject unknown
 *    fields, which is why the properties that matter are asserted one by one below).
 * 3. Each kustomization (base, overlays/example, examples) renders with kustomize, the rendered
 *    objects validate too, and the security/operability properties are asserted explicitly.
 *
 * kustomize is looked up in $KUSTOMIZE_BIN, <repo>/.tools/bin (scripts/install-kustomize.sh),
 * PATH, then $GOPATH/bin. Without it the render tests fail under CI and are skipped otherwise.
 */
import { parseConfig } from '../../src/sources/config-file.js';
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';

import { LB_POLICIES } from '../../src/catalog/types.js';
import { slicesToClusters, type ServiceLike } from '../../src/sources/kubernetes/mapping.js';
import { describeControlPlane, startControlPlane, type ControlPlane } from '../kubernetes/control-plane.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MANIFEST_ROOTS = ['deploy/kubernetes', 'examples/kubernetes'];
const KUSTOMIZATIONS = ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/example', 'deploy/kubernetes/overlays/ha', 'examples/kubernetes'];

const FULCRUM_NS = 'fulcrum-system';
const XDS_PORT = 18000;
const ADMIN_PORT = 8080;
const NONROOT_UID = 65532;

// ---------------------------------------------------------------------------------------------
// Plain-object helpers (parsed YAML is untyped; these keep the assertions readable under strict TS).

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Follow a path of keys/indices; undefined as soon as a step is missing. */
function at(v: unknown, ...keys: (string | number)[]): unknown {
  let cur = v;
  for (const k of keys) {
    if (typeof k === 'number') cur = Array.isArray(cur) ? cur[k] : undefined;
    else cur = isObj(cur) ? cur[k] : undefined;
  }
  return cur;
}

function objAt(v: unknown, ...keys: (string | number)[]): Obj {
  const got = at(v, ...keys);
  if (!isObj(got)) throw new Error(`expected an object at ${keys.join('.')}, got ${JSON.stringify(got)}`);
  return got;
}

function listAt(v: unknown, ...keys: (string | number)[]): unknown[] {
  const got = at(v, ...keys);
  if (got === undefined) return [];
  if (!Array.isArray(got)) throw new Error(`expected a list at ${keys.join('.')}, got ${JSON.stringify(got)}`);
  return got;
}

function strAt(v: unknown, ...keys: (string | number)[]): string | undefined {
  const got = at(v, ...keys);
  return typeof got === 'string' ? got : undefined;
}

function byName(list: unknown[], name: string): Obj {
  const found = list.find((x) => isObj(x) && x.name === name);
  if (!isObj(found)) throw new Error(`no entry named ${name} in ${JSON.stringify(list.map((x) => at(x, 'name')))}`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes schema validation with kubernetes-models.

interface Validatable {
  validate(): void;
}
type ModelCtor = new (data: never) => Validatable;

/** apiVersion/kind → model. A kind missing here fails the test: add it rather than skip it. */
const MODELS: Record<string, ModelCtor> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

function typeKey(o: Obj): string {
  return `${String(o.apiVersion)}/${String(o.kind)}`;
}

/** Throws with the object's identity and the schema errors when it is not a valid object. */
function validateK8s(o: Obj, where: string): void {
  const id = `${where}: ${typeKey(o)} ${String(at(o, 'metadata', 'name'))}`;
  const Model = MODELS[typeKey(o)];
  if (!Model) throw new Error(`${id}: no schema registered for this apiVersion/kind (add it to MODELS)`);
  if (typeof at(o, 'metadata', 'name') !== 'string') throw new Error(`${id}: metadata.name missing`);
  try {
    new Model(o as never).validate();
  } catch (e) {
    throw new Error(`${id}: ${(e as Error).message}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// Files.

function yamlFilesUnder(rel: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const ent of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(ent.name)) out.push(p);
    }
  };
  walk(path.join(REPO, rel));
  return out.sort();
}

function parseYamlDocs(text: string, where: string): unknown[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error(`${where}: trailing garbage after YAML documents`);
  return docs
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${where}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as unknown;
    })
    .filter((d) => d !== null && d !== undefined);
}

/** What each kustomization.yaml says about the files next to it. */
interface KustomizationRefs {
  resources: Set<string>;
  patches: Set<string>;
  generatorFiles: Set<string>;
}

function kustomizationRefs(kustomizationFile: string): KustomizationRefs {
  const dir = path.dirname(kustomizationFile);
  const k = parse(readFileSync(kustomizationFile, 'utf8')) as unknown;
  const abs = (p: string): string => path.resolve(dir, p);
  const refs: KustomizationRefs = { resources: new Set(), patches: new Set(), generatorFiles: new Set() };
  for (const r of listAt(k, 'resources')) if (typeof r === 'string') refs.resources.add(abs(r));
  for (const p of listAt(k, 'patches')) {
    const file = strAt(p, 'path');
    if (file) refs.patches.add(abs(file));
  }
  for (const p of listAt(k, 'patchesStrategicMerge')) if (typeof p === 'string') refs.patches.add(abs(p));
  for (const gen of [...listAt(k, 'configMapGenerator'), ...listAt(k, 'secretGenerator')]) {
    for (const f of listAt(gen, 'files')) {
      // `files` entries are `path` or `key=path`.
      if (typeof f === 'string') refs.generatorFiles.add(abs(f.includes('=') ? f.slice(f.indexOf('=') + 1) : f));
    }
  }
  return refs;
}

/**
 * fulcrum's config file as the manifests ship it. Beyond "parses and has clusters/listeners",
 * check what the pod spec depends on: ports, binding all interfaces (127.0.0.1 is unreachable
 * through a Service), and routes naming defined clusters.
 */
function checkFulcrumConfig(text: string, where: string): void {
  // The real loader: whatever it rejects, the pod would crash-loop on.
  const loaded = parseConfig(text, where);
  expect(loaded.kubernetes, `${where}: Kubernetes discovery enabled`).toBeDefined();
  const cfg = parse(text) as unknown;
  expect(isObj(cfg), `${where}: not a YAML mapping`).toBe(true);
  const clusters = listAt(cfg, 'clusters');
  const listeners = listAt(cfg, 'listeners');
  expect(clusters.length, `${where}: no clusters`).toBeGreaterThan(0);
  expect(listeners.length, `${where}: no listeners`).toBeGreaterThan(0);
  expect(at(cfg, 'server', 'xds', 'port'), `${where}: server.xds.port`).toBe(XDS_PORT);
  expect(at(cfg, 'server', 'xds', 'address'), `${where}: server.xds.address`).toBe('0.0.0.0');
  expect(at(cfg, 'server', 'admin', 'port'), `${where}: server.admin.port`).toBe(ADMIN_PORT);
  expect(at(cfg, 'server', 'admin', 'address'), `${where}: server.admin.address`).toBe('0.0.0.0');
  const names = new Set(clusters.map((c) => strAt(c, 'name')));
  for (const c of clusters) {
    const policy = strAt(c, 'lbPolicy');
    if (policy !== undefined) expect(LB_POLICIES as readonly string[], `${where}: lbPolicy`).toContain(policy);
  }
  for (const l of listeners) {
    for (const r of listAt(l, 'routes')) {
      // A name with a '/' is a Kubernetes-discovered cluster (<namespace>/<service>:<port>).
      const cluster = String(strAt(r, 'cluster'));
      if (!cluster.includes('/')) expect(names, `${where}: listener ${strAt(l, 'name')} routes to an undefined cluster`).toContain(cluster);
      else expect(cluster, `${where}: a discovered cluster name`).toMatch(/^[a-z0-9-]+\/[a-z0-9-]+:[a-z0-9-]+$/);
    }
  }
}

describe('manifest files', () => {
  const files = MANIFEST_ROOTS.flatMap(yamlFilesUnder);
  const kustomizationFiles = files.filter((f) => path.basename(f) === 'kustomization.yaml');
  const refs = kustomizationFiles.map(kustomizationRefs);
  const resources = new Set(refs.flatMap((r) => [...r.resources]));
  const patches = new Set(refs.flatMap((r) => [...r.patches]));
  const generatorFiles = new Set(refs.flatMap((r) => [...r.generatorFiles]));

  it('finds the manifests and every kustomization', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(kustomizationFiles.map((f) => path.relative(REPO, path.dirname(f))).sort()).toEqual(
      [...KUSTOMIZATIONS].sort(),
    );
  });

  it.each(files.map((f) => [path.relative(REPO, f), f] as const))('%s parses and validates', (rel, file) => {
    const text = readFileSync(file, 'utf8');
    const docs = parseYamlDocs(text, rel);
    expect(docs.length, `${rel}: empty`).toBeGreaterThan(0);

    if (path.basename(file) === 'kustomization.yaml') {
      expect(at(docs[0], 'apiVersion')).toBe('kustomize.config.k8s.io/v1beta1');
      expect(at(docs[0], 'kind')).toBe('Kustomization');
    } else if (generatorFiles.has(file)) {
      // Generator input: fulcrum's config file, embedded into the ConfigMap as is.
      checkFulcrumConfig(text, rel);
    } else if (patches.has(file)) {
      // A partial object: only its identity can be checked on its own; the rendered result is
      // validated in full below.
      for (const d of docs) {
        expect(MODELS[typeKey(objAt(d))], `${rel}: unknown patch target kind`).toBeDefined();
        expect(typeof at(d, 'metadata', 'name')).toBe('string');
      }
    } else {
      expect(resources.has(file), `${rel} is not listed in any kustomization.yaml, so it never deploys`).toBe(true);
      for (const d of docs) validateK8s(objAt(d), rel);
    }
  });

  it('schema validation rejects a broken object (the validator is live)', () => {
    const broken = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'x' },
      spec: { serviceName: 'x', selector: {}, template: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 'xds' }] }] } } },
    };
    expect(() => validateK8s(broken, 'inline')).toThrow(/containerPort must be integer/);
  });
});

// ---------------------------------------------------------------------------------------------
// Rendering with kustomize.

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

function findKustomize(): string | undefined {
  const fromEnv = process.env.KUSTOMIZE_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`KUSTOMIZE_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const candidates = [
    path.join(REPO, '.tools/bin/kustomize'),
    findOnPath('kustomize'),
    path.join(process.env.GOPATH ?? path.join(homedir(), 'go'), 'bin/kustomize'),
  ];
  return candidates.find((c): c is string => c !== undefined && isExecutable(c));
}

const KUSTOMIZE = findKustomize();
const IN_CI = Boolean(process.env.CI);
if (!KUSTOMIZE && !IN_CI) {
  console.warn(
    '[test/deploy] kustomize not found ($KUSTOMIZE_BIN, .tools/bin, PATH, $GOPATH/bin): skipping render tests. ' +
      'Install it with scripts/install-kustomize.sh.',
  );
}

function render(rel: string): Obj[] {
  if (!KUSTOMIZE) {
    throw new Error('kustomize not found and CI is set: run scripts/install-kustomize.sh (or set KUSTOMIZE_BIN)');
  }
  const out = execFileSync(KUSTOMIZE, ['build', path.join(REPO, rel)], { encoding: 'utf8', timeout: 60_000 });
  return parseYamlDocs(out, `kustomize build ${rel}`).map((d) => objAt(d));
}

function find(objs: Obj[], kind: string, name: string): Obj {
  const found = objs.filter((o) => o.kind === kind && at(o, 'metadata', 'name') === name);
  expect(found, `${kind}/${name} in rendered output`).toHaveLength(1);
  return found[0] as Obj;
}

function expectSelectorMatches(selector: Obj, podLabels: Obj, what: string): void {
  expect(Object.keys(selector).length, `${what}: empty selector`).toBeGreaterThan(0);
  for (const [k, v] of Object.entries(selector)) expect(podLabels[k], `${what}: selector ${k}`).toBe(v);
}

/** Container port number for a Service/probe port that may be a name or a number. */
function resolvePort(container: Obj, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  const p = listAt(container, 'ports').find((x) => at(x, 'name') === port);
  const n = at(p, 'containerPort');
  return typeof n === 'number' ? n : undefined;
}

function expectHardenedContainer(podSpec: Obj, container: Obj, what: string): void {
  const sc = objAt(container, 'securityContext');
  const podSc = isObj(podSpec.securityContext) ? podSpec.securityContext : {};
  expect(sc.allowPrivilegeEscalation, `${what}: allowPrivilegeEscalation`).toBe(false);
  expect(sc.readOnlyRootFilesystem, `${what}: readOnlyRootFilesystem`).toBe(true);
  expect(sc.privileged ?? false, `${what}: privileged`).toBe(false);
  expect(listAt(sc, 'capabilities', 'drop'), `${what}: capabilities.drop`).toContain('ALL');
  expect(listAt(sc, 'capabilities', 'add'), `${what}: capabilities.add`).toEqual([]);
  expect(sc.runAsNonRoot ?? podSc.runAsNonRoot, `${what}: runAsNonRoot`).toBe(true);
  const uid = sc.runAsUser ?? podSc.runAsUser;
  expect(typeof uid === 'number' && uid > 0, `${what}: runAsUser ${String(uid)} must be a non-zero uid`).toBe(true);
  expect(at(sc, 'seccompProfile', 'type') ?? at(podSc, 'seccompProfile', 'type'), `${what}: seccomp`).toBe(
    'RuntimeDefault',
  );
  for (const kind of ['requests', 'limits'] as const) {
    for (const r of ['cpu', 'memory']) {
      expect(at(container, 'resources', kind, r), `${what}: resources.${kind}.${r}`).toBeDefined();
    }
  }
}

/** The properties the fulcrum control plane must keep in every rendering (base and overlays). */
/** The node flag CSDS safe_regex matchers need at start (src/xds/node-matchers.ts). */
const LINEAR_REGEXP_FLAG = '--enable-experimental-regexp-engine';

/**
 * The image's ENTRYPOINT starts node with LINEAR_REGEXP_FLAG; a container `command` would replace
 * it, and NODE_OPTIONS cannot carry the flag (node refuses to start with it there).
 */
function expectLinearRegexAtStart(container: Obj): void {
  expect(at(container, 'command'), 'a command would drop the ENTRYPOINT\'s node flags').toBeUndefined();
  const nodeOptions = listAt(container, 'env').find((e) => at(e, 'name') === 'NODE_OPTIONS');
  expect(String(nodeOptions === undefined ? '' : at(nodeOptions, 'value'))).not.toContain(LINEAR_REGEXP_FLAG);
}

function expectFulcrumStack(objs: Obj[], replicas = 1): { sts: Obj; container: Obj; configText: string } {
  for (const o of objs) validateK8s(o, 'rendered');

  // Everything namespaced lives in fulcrum-system.
  find(objs, 'Namespace', FULCRUM_NS);
  for (const o of objs) {
    if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(String(o.kind))) {
      expect(at(o, 'metadata', 'namespace'), `${typeKey(o)} ${String(at(o, 'metadata', 'name'))}`).toBe(FULCRUM_NS);
    }
  }

  // StatefulSet: one replica (three on etcd), stable identity, governed by a headless Service.
  const sts = find(objs, 'StatefulSet', 'fulcrum');
  const spec = objAt(sts, 'spec');
  expect(spec.replicas).toBe(replicas);
  const podLabels = objAt(spec, 'template', 'metadata', 'labels');
  expectSelectorMatches(objAt(spec, 'selector', 'matchLabels'), podLabels, 'StatefulSet');
  const headless = find(objs, 'Service', String(spec.serviceName));
  expect(at(headless, 'spec', 'clusterIP')).toBe('None');

  const podSpec = objAt(spec, 'template', 'spec');
  expect(podSpec.serviceAccountName).toBe('fulcrum');
  expect(podSpec.terminationGracePeriodSeconds as number).toBeGreaterThanOrEqual(30);
  const podSc = objAt(podSpec, 'securityContext');
  expect(podSc.runAsNonRoot).toBe(true);
  expect(podSc.runAsUser).toBe(NONROOT_UID);
  expect(podSc.fsGroup).toBe(NONROOT_UID);
  expect(at(podSc, 'seccompProfile', 'type')).toBe('RuntimeDefault');

  const container = byName(listAt(podSpec, 'containers'), 'fulcrum');
  expectHardenedContainer(podSpec, container, 'fulcrum container');
  expect(at(container, 'securityContext', 'runAsUser') ?? podSc.runAsUser).toBe(NONROOT_UID);
  expect(resolvePort(container, 'xds')).toBe(XDS_PORT);
  expect(resolvePort(container, 'admin')).toBe(ADMIN_PORT);
  expectLinearRegexAtStart(container);

  // Probes: readiness on /readyz, liveness and startup on /healthz, all on the admin port.
  const probe = (name: string): Obj => objAt(container, name, 'httpGet');
  expect(probe('readinessProbe').path).toBe('/readyz');
  expect(probe('livenessProbe').path).toBe('/healthz');
  expect(probe('startupProbe').path).toBe('/healthz');
  for (const p of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    expect(resolvePort(container, probe(p).port), `${p} port`).toBe(ADMIN_PORT);
  }

  // Environment: data dir and tokens from a Secret (never inline values).
  const env = listAt(container, 'env');
  expect(byName(env, 'FULCRUM_DATA_DIR').value).toBe('/var/lib/fulcrum');
  for (const name of ['FULCRUM_ADMIN_TOKEN', 'FULCRUM_READ_TOKEN']) {
    const e = byName(env, name);
    expect(e.value, `${name} must not be inline`).toBeUndefined();
    expect(at(e, 'valueFrom', 'secretKeyRef', 'name'), name).toBeTypeOf('string');
  }

  // Volumes: PVC for the data dir, emptyDir for /tmp, the generated ConfigMap for the config.
  const mounts = listAt(container, 'volumeMounts');
  const volumes = listAt(podSpec, 'volumes');
  const mountAt = (p: string): Obj => {
    const m = mounts.find((x) => at(x, 'mountPath') === p);
    expect(m, `volumeMount at ${p}`).toBeDefined();
    return m as Obj;
  };
  const dataMount = mountAt('/var/lib/fulcrum');
  const claimTemplate = listAt(spec, 'volumeClaimTemplates').find((t) => at(t, 'metadata', 'name') === dataMount.name);
  expect(claimTemplate, `volumeClaimTemplate ${String(dataMount.name)} for /var/lib/fulcrum`).toBeDefined();
  const claimSpec = objAt(claimTemplate, 'spec');
  expect(listAt(claimSpec, 'accessModes')).toEqual(['ReadWriteOnce']);
  expect(at(claimSpec, 'resources', 'requests', 'storage')).toBeTypeOf('string');
  expect(volumes.find((v) => at(v, 'name') === dataMount.name), 'data must come from the PVC, not a pod volume').toBe(
    undefined,
  );

  const tmpMount = mountAt('/tmp');
  expect(at(byName(volumes, String(tmpMount.name)), 'emptyDir')).toBeDefined();

  const configMount = mountAt('/etc/fulcrum');
  expect(configMount.readOnly).toBe(true);
  const configMapName = strAt(byName(volumes, String(configMount.name)), 'configMap', 'name');
  // The StatefulSet must reference the generated (hash-suffixed) ConfigMap that is rendered.
  const cm = find(objs, 'ConfigMap', String(configMapName));
  expect(configMapName).toMatch(/^fulcrum-config-[a-z0-9]{10}$/);
  const configText = strAt(cm, 'data', 'fulcrum.yaml');
  expect(configText, 'ConfigMap data["fulcrum.yaml"]').toBeTypeOf('string');
  checkFulcrumConfig(String(configText), `ConfigMap ${String(configMapName)}`);

  // Service `fulcrum`: grpc-xds (appProtocol grpc) and http-admin, reaching the right container ports.
  const svc = find(objs, 'Service', 'fulcrum');
  expectSelectorMatches(objAt(svc, 'spec', 'selector'), podLabels, 'Service fulcrum');
  const ports = listAt(svc, 'spec', 'ports');
  const xds = byName(ports, 'grpc-xds');
  expect(xds.port).toBe(XDS_PORT);
  expect(xds.appProtocol).toBe('grpc');
  expect(resolvePort(container, xds.targetPort)).toBe(XDS_PORT);
  const admin = byName(ports, 'http-admin');
  expect(admin.port).toBe(ADMIN_PORT);
  expect(resolvePort(container, admin.targetPort)).toBe(ADMIN_PORT);

  // PDB covers the pod.
  const pdb = find(objs, 'PodDisruptionBudget', 'fulcrum');
  expectSelectorMatches(objAt(pdb, 'spec', 'selector', 'matchLabels'), podLabels, 'PodDisruptionBudget');

  // RBAC: read-only discovery cluster-wide, leases only in fulcrum's namespace, both bound to the SA.
  find(objs, 'ServiceAccount', 'fulcrum');
  const cr = find(objs, 'ClusterRole', 'fulcrum-discovery');
  const rules = listAt(cr, 'rules');
  const rule = (group: string, resource: string): Obj | undefined =>
    rules.find((r) => listAt(r, 'apiGroups').includes(group) && listAt(r, 'resources').includes(resource)) as
      | Obj
      | undefined;
  for (const [group, resource] of [
    ['', 'services'],
    ['discovery.k8s.io', 'endpointslices'],
  ] as const) {
    expect(listAt(rule(group, resource), 'verbs').sort(), `${group}/${resource}`).toEqual(['get', 'list', 'watch']);
  }
  for (const r of rules) {
    expect(listAt(r, 'verbs').sort(), 'ClusterRole must stay read-only').toEqual(['get', 'list', 'watch']);
  }
  const role = find(objs, 'Role', 'fulcrum-leader-election');
  const leaseRule = listAt(role, 'rules').find((r) => listAt(r, 'resources').includes('leases'));
  expect(listAt(leaseRule, 'apiGroups')).toEqual(['coordination.k8s.io']);
  expect(listAt(leaseRule, 'verbs').sort()).toEqual(['create', 'get', 'list', 'patch', 'update', 'watch']);
  for (const [kind, roleKind, roleName] of [
    ['ClusterRoleBinding', 'ClusterRole', 'fulcrum-discovery'],
    ['RoleBinding', 'Role', 'fulcrum-leader-election'],
  ] as const) {
    const b = find(objs, kind, roleName);
    expect(at(b, 'roleRef', 'kind')).toBe(roleKind);
    expect(at(b, 'roleRef', 'name')).toBe(roleName);
    expect(listAt(b, 'subjects')).toContainEqual({ kind: 'ServiceAccount', name: 'fulcrum', namespace: FULCRUM_NS });
  }

  return { sts, container, configText: String(configText) };
}

/** What the HA overlay adds to the stack: replicas spread and budgeted, etcd from a Secret, readiness on etcd. */
function expectHaOverlay(objs: Obj[], sts: Obj, container: Obj, configText: string): void {
  const podSpec = objAt(sts, 'spec', 'template', 'spec');
  const podLabels = objAt(sts, 'spec', 'template', 'metadata', 'labels');
  const pdb = objAt(find(objs, 'PodDisruptionBudget', 'fulcrum'), 'spec');
  expect(pdb.minAvailable).toBe(2);
  expect(pdb.maxUnavailable, 'minAvailable and maxUnavailable exclude each other').toBeUndefined();
  // One replica per node (required), across zones where possible; the terms select fulcrum's pods.
  const anti = objAt(podSpec, 'affinity', 'podAntiAffinity');
  const required = listAt(anti, 'requiredDuringSchedulingIgnoredDuringExecution');
  expect(required.map((t) => at(t, 'topologyKey'))).toEqual(['kubernetes.io/hostname']);
  expectSelectorMatches(objAt(required[0], 'labelSelector', 'matchLabels'), podLabels, 'pod anti-affinity');
  // etcd: the config says etcd; endpoints come from the Secret, credentials are files from it.
  const store = objAt(parse(configText), 'store');
  expect(store.kind).toBe('etcd');
  const env = listAt(container, 'env');
  expect(at(byName(env, 'FULCRUM_ETCD_ENDPOINTS'), 'valueFrom', 'secretKeyRef')).toEqual({ name: 'fulcrum-etcd', key: 'endpoints' });
  expect(at(byName(env, 'FULCRUM_REPLICA_ID'), 'valueFrom', 'fieldRef', 'fieldPath')).toBe('metadata.name');
  const mount = listAt(container, 'volumeMounts').find((m) => at(m, 'mountPath') === '/etc/fulcrum-etcd');
  expect(at(mount, 'readOnly')).toBe(true);
  expect(at(byName(listAt(podSpec, 'volumes'), String(at(mount, 'name'))), 'secret', 'secretName')).toBe('fulcrum-etcd');
  for (const file of [strAt(store, 'etcd', 'passwordFile'), strAt(store, 'etcd', 'tls', 'ca')]) {
    expect(file, 'etcd credential files live in the Secret mount').toMatch(/^\/etc\/fulcrum-etcd\//);
  }
  expect(strAt(store, 'etcd', 'password'), 'no inline etcd password').toBeUndefined();
  // Readiness (which fails without etcd) gates the Service; liveness does not restart on it.
  expect(at(container, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
  expect(at(container, 'livenessProbe', 'httpGet', 'path')).toBe('/healthz');
}

function findEnvoy(): string | undefined {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv && isExecutable(fromEnv)) return fromEnv;
  return findOnPath('envoy');
}

describe.skipIf(!KUSTOMIZE && !IN_CI)('kustomize renders', () => {
  it('the image starts node with V8\'s linear-time regex engine on, before dist/main.js', () => {
    const entrypoint = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT '));
    const argv = JSON.parse(entrypoint?.slice('ENTRYPOINT '.length) ?? '[]') as string[];
    expect(argv.indexOf(LINEAR_REGEXP_FLAG)).toBeGreaterThan(0);
    expect(argv.indexOf(LINEAR_REGEXP_FLAG)).toBeLessThan(argv.indexOf('dist/main.js'));
  });

  it('deploy/kubernetes/base: valid objects with the hardened fulcrum StatefulSet', () => {
    const { container } = expectFulcrumStack(render('deploy/kubernetes/base'));
    expect(container.image).toBe('fulcrum:0.1.0');
  });

  it('deploy/kubernetes/overlays/example: still hardened, with its image, resources and config', () => {
    const base = expectFulcrumStack(render('deploy/kubernetes/base'));
    const overlay = expectFulcrumStack(render('deploy/kubernetes/overlays/example'));
    expect(overlay.container.image).toBe('registry.example.com/platform/fulcrum:0.1.0');
    expect(at(overlay.container, 'resources')).not.toEqual(at(base.container, 'resources'));
    expect(at(overlay.container, 'resources', 'limits', 'memory')).toBe('2Gi');
    expect(at(overlay.sts, 'spec', 'volumeClaimTemplates', 0, 'spec', 'resources', 'requests', 'storage')).toBe('5Gi');
    expect(overlay.configText).not.toBe(base.configText);
    // The strategic-merge patch must merge env by name, not replace the list.
    const env = listAt(overlay.container, 'env').map((e) => at(e, 'name'));
    expect(env).toEqual(expect.arrayContaining(['FULCRUM_DATA_DIR', 'FULCRUM_ADMIN_TOKEN', 'NODE_OPTIONS']));
  });

  it('deploy/kubernetes/overlays/ha: 3 spread replicas on etcd (endpoints and credentials from a Secret), PDB minAvailable 2', () => {
    const objs = render('deploy/kubernetes/overlays/ha');
    const { sts, container, configText } = expectFulcrumStack(objs, 3);
    expectHaOverlay(objs, sts, container, configText);
  });

  it('examples/kubernetes: ORCA backends of unequal capacity behind an adaptive Service, a client with an Envoy sidecar', () => {
    const objs = render('examples/kubernetes');
    for (const o of objs) validateK8s(o, 'rendered examples');

    // The discovered Service: opt-in label and annotations with valid values (adaptive weights).
    const svc = find(objs, 'Service', 'echo');
    expect(at(svc, 'metadata', 'labels', 'fulcrum.io/balance')).toBe('true');
    expect(LB_POLICIES as readonly string[]).toContain(strAt(svc, 'metadata', 'annotations', 'fulcrum.io/lb-policy'));
    const mapped = slicesToClusters([svc as unknown as ServiceLike], []);
    expect(mapped.warnings).toEqual([]);
    expect(mapped.clusters[0]?.weighting.kind).toBe('pid');

    // Two backend Deployments behind it, of unequal capacity, running the ORCA queueing backend.
    const workers: number[] = [];
    for (const name of ['echo-small', 'echo-large']) {
      const d = find(objs, 'Deployment', name);
      expectSelectorMatches(objAt(svc, 'spec', 'selector'), objAt(d, 'spec', 'template', 'metadata', 'labels'), name);
      const spec = objAt(d, 'spec', 'template', 'spec');
      const backend = byName(listAt(spec, 'containers').map((c) => objAt(c)), 'backend');
      expectHardenedContainer(spec, backend, `${name} backend`);
      expect(listAt(backend, 'command').map(String)).toContain('dist/examples/backends/queueing-backend.js');
      const args = listAt(backend, 'args').map(String);
      workers.push(Number(args[args.indexOf('--workers') + 1]));
    }
    expect(workers[1]).toBeGreaterThan(workers[0] ?? Infinity);

    // The client sends its load to its sidecar; fulcrum's base config routes that listener to the Service.
    const deploy = find(objs, 'Deployment', 'client');
    const podSpec = objAt(deploy, 'spec', 'template', 'spec');
    const containers = listAt(podSpec, 'containers').map((c) => objAt(c));
    for (const c of containers) expectHardenedContainer(podSpec, c, `container ${String(c.name)}`);
    expect(listAt(byName(containers, 'load'), 'args').map(String)).toContain('http://127.0.0.1:10000/');
    const baseConfig = parseConfig(readFileSync(path.join(REPO, 'deploy/kubernetes/base/fulcrum.yaml'), 'utf8'), 'base/fulcrum.yaml');
    const ingress = baseConfig.catalog.listeners.find((l) => l.name === 'ingress');
    expect(ingress?.port).toBe(10000);
    expect(ingress?.routes.map((r) => r.cluster)).toContain('fulcrum-demo/echo:http');

    // Envoy sidecar: pinned image, node id from the pod name via the Downward API, bootstrap mounted.
    const envoy = byName(containers, 'envoy');
    expect(envoy.image).toBe('envoyproxy/envoy:v1.40.0');
    const args = listAt(envoy, 'args').map(String);
    const flag = (f: string): string | undefined => args[args.indexOf(f) + 1];
    expect(args).toContain('--service-node');
    expect(flag('--service-node')).toContain('$(POD_NAME)');
    expect(flag('--service-cluster')).toBeTruthy();
    const configPath = flag('--config-path') ?? flag('-c');
    expect(at(byName(listAt(envoy, 'env'), 'POD_NAME'), 'valueFrom', 'fieldRef', 'fieldPath')).toBe('metadata.name');
    const mount = listAt(envoy, 'volumeMounts').find((m) => configPath?.startsWith(`${String(at(m, 'mountPath'))}/`));
    expect(mount, `a volumeMount containing ${String(configPath)}`).toBeDefined();
    const cmName = strAt(byName(listAt(podSpec, 'volumes'), String(at(mount, 'name'))), 'configMap', 'name');
    const cm = find(objs, 'ConfigMap', String(cmName));
    const bootstrapText = strAt(cm, 'data', path.basename(String(configPath)));
    expect(bootstrapText, 'bootstrap file in the ConfigMap').toBeTypeOf('string');

    // Bootstrap: ADS over gRPC to fulcrum.fulcrum-system.svc.cluster.local:18000.
    const bootstrap = parse(String(bootstrapText)) as unknown;
    expect(at(bootstrap, 'dynamic_resources', 'ads_config', 'api_type')).toBe('GRPC');
    expect(at(bootstrap, 'dynamic_resources', 'cds_config', 'ads')).toEqual({});
    expect(at(bootstrap, 'dynamic_resources', 'lds_config', 'ads')).toEqual({});
    const xdsCluster = String(at(bootstrap, 'dynamic_resources', 'ads_config', 'grpc_services', 0, 'envoy_grpc', 'cluster_name'));
    const cluster = byName(listAt(bootstrap, 'static_resources', 'clusters'), xdsCluster);
    const addr = objAt(cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address');
    expect(addr.address).toBe(`fulcrum.${FULCRUM_NS}.svc.cluster.local`);
    expect(addr.port_value).toBe(XDS_PORT);
    expect(at(cluster, 'typed_extension_protocol_options')).toBeDefined(); // HTTP/2 for gRPC

    // And the base really serves that name and port.
    const base = render('deploy/kubernetes/base');
    const fulcrumSvc = find(base, 'Service', 'fulcrum');
    expect(at(fulcrumSvc, 'metadata', 'namespace')).toBe(FULCRUM_NS);
    expect(listAt(fulcrumSvc, 'spec', 'ports').map((p) => at(p, 'port'))).toContain(XDS_PORT);

    // Envoy itself accepts the bootstrap (offline: --mode validate opens no connections).
    const envoyBin = findEnvoy();
    if (!envoyBin) {
      console.warn('[test/deploy] envoy not on PATH ($ENVOY_BIN): skipping `envoy --mode validate` of the bootstrap');
      return;
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'fulcrum-bootstrap-'));
    try {
      const file = path.join(dir, 'envoy.yaml');
      writeFileSync(file, String(bootstrapText));
      const out = execFileSync(
        envoyBin,
        ['--mode', 'validate', '--config-path', file, '--service-node', 'pod.ns', '--service-cluster', 'client', '--disable-hot-restart'],
        { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(out).toContain('OK');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * What kubeconform-style checks cannot see (admission defaults and validation, e.g. a PDB with
 * both minAvailable and maxUnavailable, an anti-affinity term without a topology key): each
 * rendering is created on a real kube-apiserver with dryRun=All. The namespace is created for
 * real, since namespaced objects are dry-run into it.
 */
describeControlPlane('the rendered manifests on a real kube-apiserver (server-side dry run)', () => {
  let cp: ControlPlane | undefined;
  let api: KubernetesObjectApi;
  beforeAll(async () => {
    cp = await startControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    api = KubernetesObjectApi.makeApiClient(kc);
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: FULCRUM_NS } });
  }, 180_000);
  afterAll(() => cp?.stop());

  it.skipIf(!KUSTOMIZE && !IN_CI).each(['deploy/kubernetes/base', 'deploy/kubernetes/overlays/ha'])('%s is accepted', async (rel) => {
    const objs = render(rel).filter((o) => o.kind !== 'Namespace');
    expect(objs.length).toBeGreaterThan(5);
    for (const o of objs) {
      const created = await api.create(o as KubernetesObject, undefined, 'All').catch((err: unknown) => {
        throw new Error(`${typeKey(o)} ${String(at(o, 'metadata', 'name'))} refused: ${(err as Error).message}`);
      });
      // The server filled in what it owns (uid, defaults): it really went through admission.
      expect(created.metadata?.uid, `${typeKey(o)} dry-run result`).toBeTruthy();
    }
  });
});
