import net from 'node:net';

/**
 * Ask the kernel for a currently free TCP port on 127.0.0.1 (listen on port 0,
 * read the assigned port, close). The port is free at return time only, so use
 * it promptly; prefer port 0 plus a discovery mechanism where the program
 * supports one (Envoy's admin does: see `startEnvoy`).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** `n` distinct free ports (all held open until every one is known, then released). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      server.unref();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host, port: 0, exclusive: true }, () => {
            const address = server.address();
            if (address === null || typeof address === 'string') {
              reject(new Error(`freePorts: unexpected server address ${String(address)}`));
            } else {
              resolve(address.port);
            }
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(
      servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))),
    );
  }
}
