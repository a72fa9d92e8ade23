/**
 * Open-loop HTTP load at a fixed rate, paced on elapsed time. Like `openLoop` in
 * test/support/capacity-backends.ts, but that one adds rate × 10 ms per timer tick, and Node's
 * timers fire late (every ~10.3 ms here), so it delivered ~3% less than asked. Here each timer
 * tick sends whatever is due since the start, so the offered rate is exact on average, and the
 * requests sent are counted.
 */
import http from 'node:http';

export interface LoadGenerator {
  /** Requests sent so far. */
  readonly sent: number;
  stop(): Promise<void>;
}

export function openLoopPaced(
  url: string,
  rps: number,
  onResponse: (backend: string | undefined, latencyMs: number, ok: boolean) => void,
): LoadGenerator {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const inflight = new Set<Promise<void>>();
  const started = performance.now();
  let sent = 0;
  const fire = (): void => {
    const t = performance.now();
    const p = new Promise<void>((resolve) => {
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const b = res.headers['x-backend'];
          onResponse(typeof b === 'string' ? b : undefined, performance.now() - t, (res.statusCode ?? 0) < 400);
          resolve();
        });
      });
      req.on('error', () => {
        onResponse(undefined, performance.now() - t, false);
        resolve();
      });
      req.setTimeout(15_000, () => req.destroy());
    });
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  };
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * rps);
    while (sent < due) {
      sent++;
      fire();
    }
  }, 5);
  return {
    get sent() {
      return sent;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...inflight]);
      agent.destroy();
    },
  };
}
