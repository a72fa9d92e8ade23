import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startKubeRun } from './kube-run.js';
import { processCpuMs } from './proc-cpu.js';

/**
 * Start-to-serving time of the command: from spawn until /readyz answers 200 (config loaded, xDS
 * listening). Ports are free ones (--xds-port 0), the data directory a fresh temporary one.
 * Also the CPU time the process had used by then (Linux /proc): on a shared, loaded machine the
 * wall time mostly measures the neighbours, the CPU time much less so.
 *   npx tsx bench/startup.ts [--runs 5] [--config examples/fulcrum.yaml] [-- node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js]
 */

const HELP = `Start-to-serving time: spawn until /readyz answers 200, and the CPU used by then.

  npx tsx bench/startup.ts [--runs 5] [--config examples/fulcrum.yaml] [-- node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js]

The command (default: node --max-semi-space-size=4 --v8-pool-size=1 dist/main.js, what \`npm start\` runs, so
\`npm run build\` first) gets --config, --xds-port 0 and a fresh --data-dir. Prints the median, min and max of --runs starts.

Options:
  --runs N        starts to time (default 5)
  --config FILE   the config to serve (default examples/fulcrum.yaml, the embedded default)
  --kube          a Kubernetes run: start etcd + kube-apiserver (.tools/bin) once, with 20
                  labelled Services of 10 endpoints, and serve --config with the Kubernetes source
                  enabled against it (/readyz waits for the first complete Kubernetes view)
  -h, --help      this text
`;

const { values, positionals } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    config: { type: 'string', default: 'examples/fulcrum.yaml' },
    kube: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (!Number.isInteger(Number(values.runs)) || Number(values.runs) < 1) throw new Error(`--runs: expected a whole number above 0, got ${values.runs}`);
const command = positionals.length > 0 ? positionals : [process.execPath, '--max-semi-space-size=4', '--v8-pool-size=1', 'dist/main.js'];

async function once(configPath: string): Promise<{ wall: number; cpu: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-startup-'));
  const started = performance.now();
  const [bin = process.execPath, ...args] = command;
  const child = spawn(bin, [...args, '--config', configPath, '--xds-port', '0', '--data-dir', dir], { stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    while (true) {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${out}`);
      const port = /"port":(\d+),"msg":"admin server listening"/.exec(out)?.[1];
      if (port) {
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
        if (ok) return { wall: performance.now() - started, cpu: processCpuMs(child.pid ?? 0) };
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

const runs: { wall: number; cpu: number }[] = [];
const kube = values.kube ? await startKubeRun(values.config) : undefined;
try {
  for (let i = 0; i < Number(values.runs); i++) runs.push(await once(kube?.configPath ?? values.config));
} finally {
  await kube?.stop();
}
const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return `median ${(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(0)} ms (min ${(sorted[0] ?? NaN).toFixed(0)}, max ${(sorted.at(-1) ?? NaN).toFixed(0)})`;
};
process.stdout.write(
  `${command.join(' ')}${kube ? ' (Kubernetes source)' : ''}: start to serving ${stats(runs.map((r) => r.wall))}; CPU used by then ${stats(runs.map((r) => r.cpu))}; ${runs.length} runs\n`,
);
