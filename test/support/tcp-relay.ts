import net from 'node:net';

/**
 * A TCP relay in front of a server (an etcd member), for cutting one client off while everyone
 * else keeps talking to the server: `cut()` drops every relayed connection and refuses new ones
 * until `restore()`.
 */
export interface TcpRelay {
  /** http://127.0.0.1:<relay port> */
  readonly url: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(target: { readonly host: string; readonly port: number }): Promise<TcpRelay> {
  const open = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      cut = true;
      for (const s of open) s.destroy();
    },
    restore: () => {
      cut = false;
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
