import { randomBytes } from 'node:crypto';
import type http2 from 'node:http2';
import net from 'node:net';
import { callEnd, connectH2, type CallEnd, discoveryRequest, firstData, grpcFrame, hugeNameRequest, openCall } from './raw-grpc.js';

/**
 * The hostile clients of issue 10, each from its own loopback source address (127.0.0.x), so
 * they are distinct peers to the server and a well-behaved Envoy on 127.0.0.1 is not one of them.
 * Each returns what the attacker saw, for the test to assert on.
 */

const settle = <T>(ps: readonly Promise<T>[]): Promise<T[]> => Promise.all(ps);

/** Requests naming one resource of `nameBytes` bytes; the server must refuse each from its size. */
export async function hugeNames(port: number, source: string, count: number, nameBytes: number): Promise<CallEnd[]> {
  const frame = grpcFrame(hugeNameRequest(nameBytes));
  const session = await connectH2(port, source);
  const ends = await settle(
    Array.from({ length: count }, () => {
      const stream = openCall(session);
      const end = callEnd(stream);
      // Stop sending once the server has answered (it refuses from the length prefix).
      const stop = (): void => void stream.close();
      stream.once('response', stop);
      stream.once('trailers', stop);
      stream.write(frame);
      return end;
    }),
  );
  session.destroy();
  return ends;
}

export interface NeverRead {
  /** Calls the server admitted (response headers without a status). */
  readonly admitted: number;
  /** Calls refused, by gRPC status message. */
  readonly refused: Map<string, number>;
  close(): void;
}

/** Calls that send one subscription and never read a byte of what comes back. */
export async function neverRead(port: number, sources: readonly string[], count: number, perConnection: number): Promise<NeverRead> {
  const sessions: http2.ClientHttp2Session[] = [];
  const refused = new Map<string, number>();
  let admitted = 0;
  const answered: Promise<void>[] = [];
  for (let opened = 0, c = 0; opened < count; c++) {
    const session = await connectH2(port, sources[c % sources.length]);
    sessions.push(session);
    for (let i = 0; i < perConnection && opened < count; i++, opened++) {
      const stream = openCall(session);
      stream.pause();
      answered.push(
        new Promise((resolve) => {
          stream.once('response', (h) => {
            const message = typeof h['grpc-message'] === 'string' ? decodeURIComponent(h['grpc-message']) : undefined;
            if (message === undefined) admitted += 1;
            else refused.set(message, (refused.get(message) ?? 0) + 1);
            resolve();
          });
          stream.once('close', () => resolve());
        }),
      );
      stream.write(grpcFrame(discoveryRequest(`never-read-${opened}`)));
    }
  }
  await settle(answered);
  return { admitted, refused, close: () => sessions.forEach((s) => s.destroy()) };
}

export interface IdleConnections {
  /** Raw TCP connections (no bytes sent) the server has closed so far. */
  readonly silentClosed: () => number;
  /** HTTP/2 connections (preface and SETTINGS, no call) still open. */
  readonly h2Open: () => number;
  close(): void;
}

/** Connections that never send a call: half raw TCP saying nothing, half HTTP/2 with no stream. */
export async function idleConnections(port: number, silentSource: string, h2Source: string, count: number): Promise<IdleConnections> {
  let silentClosed = 0;
  const silent: net.Socket[] = [];
  for (let i = 0; i < count / 2; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: silentSource });
    s.on('error', () => undefined);
    // Reads (and drops) what the server sends, its HTTP/2 SETTINGS: a socket with unread data
    // never reports the server's close.
    s.resume();
    s.once('close', () => (silentClosed += 1));
    silent.push(s);
  }
  const h2 = await settle(Array.from({ length: count / 2 }, () => connectH2(port, h2Source).catch(() => undefined)));
  const sessions = h2.filter((s): s is http2.ClientHttp2Session => s !== undefined);
  return {
    silentClosed: () => silentClosed,
    h2Open: () => sessions.filter((s) => !s.closed && !s.destroyed).length,
    close: () => {
      silent.forEach((s) => s.destroy());
      sessions.forEach((s) => s.destroy());
    },
  };
}

/** Streams from `ids` distinct node ids, each subscribing, taking its first response and leaving. */
export async function reconnectingNodes(port: number, sources: readonly string[], ids: number, concurrency: number): Promise<{ served: number; failed: number }> {
  let next = 0;
  let served = 0;
  let failed = 0;
  let session: http2.ClientHttp2Session | undefined;
  let sessionUses = 0;
  const connection = async (): Promise<http2.ClientHttp2Session> => {
    // A proxy that reconnects opens a new connection: a fresh one every 200 streams.
    if (!session || session.destroyed || session.closed || sessionUses >= 200) {
      sessionUses = 0;
      session = await connectH2(port, sources[next % sources.length]);
    }
    sessionUses += 1;
    return session;
  };
  const worker = async (): Promise<void> => {
    while (next < ids) {
      const id = next++;
      try {
        const stream = openCall(await connection());
        const end = callEnd(stream);
        stream.write(grpcFrame(discoveryRequest(`node-${id}`)));
        if (await firstData(stream)) served += 1;
        else failed += 1;
        stream.end();
        await end;
      } catch {
        failed += 1;
      }
    }
  };
  await settle(Array.from({ length: concurrency }, worker));
  return { served, failed };
}

/** Connections writing `payload` (garbage, HTTP/1.1); resolves with how many the server closed within `withinMs`. */
export async function wrongProtocol(port: number, source: string, count: number, payload: () => Buffer, withinMs: number): Promise<number> {
  const closed = await settle(
    Array.from(
      { length: count },
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port, localAddress: source }, () => s.write(payload()));
          const timer = setTimeout(() => {
            s.destroy();
            resolve(false);
          }, withinMs);
          s.on('error', () => undefined);
          s.resume();
          s.once('close', () => {
            clearTimeout(timer);
            resolve(true);
          });
        }),
    ),
  );
  return closed.filter(Boolean).length;
}

export const garbage = (): Buffer => randomBytes(4096);
export const http11 = (): Buffer => Buffer.from('GET / HTTP/1.1\r\nHost: fulcrum\r\nConnection: keep-alive\r\n\r\n', 'latin1');
