import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { framedMessage, FramedWriter, type WriteDone } from '../../src/xds/framed-writes.js';
import { rawBidiMethod } from '../support/raw-bidi-method.js';
import { waitFor } from '../support/wait.js';
import { bindLocal, localClient } from '../support/local-grpc.js';

const METHOD = rawBidiMethod('/test.Framed/Chat');

const framed = (text: string): Uint8Array => {
  const bytes = Buffer.from(text);
  return framedMessage((out, at) => out.set(bytes, at), bytes.length);
};

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/**
 * A server whose handler writes what `script` says once the client's first message arrives; what
 * `script` returns gets each completed write's byte count.
 */
async function serve(
  script: (writer: FramedWriter, call: grpc.ServerDuplexStream<Buffer, readonly Uint8Array[]>) => WriteDone,
  interceptors: grpc.ServerInterceptor[] = [],
): Promise<grpc.Client> {
  const server = new grpc.Server({ interceptors });
  server.addService({ Chat: METHOD }, {
    Chat: (call: grpc.ServerDuplexStream<Buffer, readonly Uint8Array[]>) => {
      call.once('data', () => {
        let done: WriteDone = () => undefined;
        done = script(new FramedWriter(call, 1024, (bytes) => done(bytes)), call);
      });
    },
  });
  const port = await bindLocal(server);
  const client = localClient(port);
  cleanup.push(() => client.close(), () => server.forceShutdown());
  return client;
}

function chat(client: grpc.Client): { received: string[]; call: grpc.ClientDuplexStream<Buffer, readonly Uint8Array[]> } {
  const received: string[] = [];
  const call = client.makeBidiStreamRequest(METHOD.path, METHOD.requestSerialize, METHOD.responseDeserialize);
  call.on('data', (parts: readonly Uint8Array[]) => received.push(Buffer.concat(parts).toString()));
  call.on('error', () => undefined);
  call.write(Buffer.from('hello'));
  return { received, call };
}

describe('framed writes below grpc-js', () => {
  it('framed messages go straight to the HTTP/2 stream, the first one too, in order with the rest', async () => {
    let writer: FramedWriter | undefined;
    const completed: number[] = [];
    const client = await serve((w) => {
      writer = w;
      w.write([framed('one')], 1);
      return (bytes) => {
        completed.push(bytes);
        // Once the first write completed, the rest are written in one go.
        if (completed.length !== 1) return;
        w.write([framed('two')], 2);
        w.write([Buffer.from('three (not framed: through grpc-js)')], 3);
        w.write([framed('four')], 4);
        w.write([framed('five')], 5);
      };
    });
    const { received } = chat(client);
    await waitFor(() => received.length === 5 && completed.length === 5, { timeoutMs: 10_000, what: 'five responses' });
    expect(received).toEqual(['one', 'two', 'three (not framed: through grpc-js)', 'four', 'five']);
    expect(writer?.direct).toBe(true);
    // 'one' (headers sent first) and 'two' went below grpc-js; 'four' and 'five' queued behind
    // grpc-js's 'three' (order), so through it.
    expect(writer?.directWrites).toBe(2);
    // One callback for the writer: each write's count comes back once, in write order, on both paths.
    expect(completed).toEqual([1, 2, 3, 4, 5]);
  });

  it('writes issued at once complete once each, in order, with their counts', async () => {
    const completed: number[] = [];
    const client = await serve((w) => {
      for (let i = 1; i <= 50; i++) w.write([framed(`m${i}`)], i);
      return (bytes) => completed.push(bytes);
    });
    const { received } = chat(client);
    await waitFor(() => received.length === 50 && completed.length === 50, { timeoutMs: 10_000, what: 'fifty responses' });
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => `m${i + 1}`));
    expect(completed).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('a message over the size limit keeps grpc-js path, which applies its own limit', async () => {
    let writer: FramedWriter | undefined;
    const big = 'x'.repeat(2048);
    let wroteBig = false;
    const client = await serve((w) => {
      writer = w;
      w.write([framed('small')], 5);
      return () => {
        if (writer?.directWrites === 1 && !wroteBig) w.write([framed(big)], big.length);
        wroteBig = true;
      };
    });
    const { received } = chat(client);
    await waitFor(() => received.length === 2, { timeoutMs: 10_000, what: 'two responses' });
    expect(received).toEqual(['small', big]);
    expect(writer?.directWrites).toBe(1);
  });

  it('takes the fast path under server interceptors too (production installs at least the stream gate)', async () => {
    let writer: FramedWriter | undefined;
    const passThrough: grpc.ServerInterceptor = (_method, call) => new grpc.ServerInterceptingCall(call);
    const client = await serve((w) => {
      writer = w;
      w.write([framed('one')], 3);
      let first = true;
      return () => {
        if (first) w.write([framed('two')], 3);
        first = false;
      };
    }, [passThrough, passThrough]);
    const { received } = chat(client);
    await waitFor(() => received.length === 2, { timeoutMs: 10_000, what: 'two responses' });
    expect(received).toEqual(['one', 'two']);
    expect(writer?.direct).toBe(true);
    expect(writer?.directWrites).toBe(2);
  });
});
