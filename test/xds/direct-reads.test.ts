import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MessageCutter, readDirectly } from '../../src/xds/direct-reads.js';
import { rawBidiMethod } from '../support/raw-bidi-method.js';
import { waitFor } from '../support/wait.js';
import { bindLocal, localClient } from '../support/local-grpc.js';

const frame = (text: string, compressed = false): Buffer => {
  const body = Buffer.from(text);
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
};
const texts = (messages: readonly Buffer[]): string[] => messages.map((m) => m.toString());

describe('MessageCutter', () => {
  it('cuts several messages out of one chunk, as views of it', () => {
    const chunk = Buffer.concat([frame('a'), frame(''), frame('ccc')]);
    const cut = new MessageCutter(100).cut(chunk);
    expect(texts(cut.messages)).toEqual(['a', '', 'ccc']);
    expect(cut.messages[0]?.buffer).toBe(chunk.buffer);
  });

  it('joins a message split over chunks, whatever the split, header included', () => {
    const data = Buffer.concat([frame('first message'), frame('second')]);
    for (const size of [1, 2, 3, 5, 7, 11]) {
      const cutter = new MessageCutter(100);
      const got: string[] = [];
      for (let at = 0; at < data.length; at += size) got.push(...texts(cutter.cut(data.subarray(at, at + size)).messages));
      expect(got, `chunks of ${size}`).toEqual(['first message', 'second']);
    }
  });

  it('joins a message split over many chunks once, when its last byte arrived', () => {
    const body = Buffer.alloc(1 << 20, 7);
    const data = frame(body.toString('latin1'));
    const cutter = new MessageCutter(2 << 20);
    const concat = vi.spyOn(Buffer, 'concat');
    const got: Buffer[] = [];
    try {
      for (let at = 0; at < data.length; at += 1024) got.push(...cutter.cut(data.subarray(at, at + 1024)).messages);
      expect(concat.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      concat.mockRestore();
    }
    expect(got).toHaveLength(1);
    expect(got[0]?.equals(body)).toBe(true);
  });

  it('copies a split message as it arrives: a 61 KB first request in 16 KiB frames into two buffers, no join', () => {
    const body = Buffer.alloc(61_000, 3);
    const data = Buffer.concat([frame(body.toString('latin1')), frame('next')]);
    const cutter = new MessageCutter(4 << 20);
    const slow = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const concat = vi.spyOn(Buffer, 'concat');
    const got: Buffer[] = [];
    try {
      for (let at = 0; at < data.length; at += 16_384) got.push(...cutter.cut(data.subarray(at, at + 16_384)).messages);
      // Twice the first frame's part of the body, then the whole length (it covers the second frame's).
      expect(slow.mock.calls).toEqual([[2 * (16_384 - 5)], [61_000]]);
      expect(concat).not.toHaveBeenCalled();
    } finally {
      slow.mockRestore();
      concat.mockRestore();
    }
    expect(got.map((m) => m.length)).toEqual([61_000, 4]);
    expect(got[0]?.equals(body)).toBe(true);
  });

  it('holds what arrived, not what a header claims: a stalled 4 MiB message holds twice its 10 bytes', () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(4 << 20, 1);
    const cutter = new MessageCutter(4 << 20);
    const slow = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      expect(cutter.cut(Buffer.concat([header, Buffer.alloc(10)])).messages).toEqual([]);
      expect(cutter.cut(Buffer.alloc(10)).messages).toEqual([]);
      expect(cutter.cut(Buffer.alloc(1)).messages).toEqual([]);
      // 20 bytes fit the first buffer; the 21st doubles it.
      expect(slow.mock.calls).toEqual([[20], [42]]);
    } finally {
      slow.mockRestore();
    }
  });

  it('hands back a compressed message whose header was split, from its header on', () => {
    const rest = Buffer.concat([frame('zipped', true), frame('after')]);
    const cutter = new MessageCutter(100);
    expect(texts(cutter.cut(Buffer.concat([frame('before'), rest.subarray(0, 3)])).messages)).toEqual(['before']);
    const cut = cutter.cut(rest.subarray(3));
    expect(cut.messages).toEqual([]);
    expect(cut.compressed?.equals(rest)).toBe(true);
  });

  it('refuses a length over the limit once its header is complete, across chunks too', () => {
    const header = frame('x'.repeat(101)).subarray(0, 5);
    const cutter = new MessageCutter(100);
    expect(cutter.cut(Buffer.concat([frame('ok'), header.subarray(0, 2)])).messages.map(String)).toEqual(['ok']);
    expect(cutter.cut(header.subarray(2)).tooLarge).toBe(101);
  });

  it('refuses a length over the limit from the header, before any of the message arrived', () => {
    const header = frame('x'.repeat(101)).subarray(0, 5);
    const cut = new MessageCutter(100).cut(Buffer.concat([frame('ok'), header]));
    expect(texts(cut.messages)).toEqual(['ok']);
    expect(cut.tooLarge).toBe(101);
    expect(new MessageCutter(-1).cut(frame('x'.repeat(101))).messages).toHaveLength(1);
  });

  it('stops at a compressed message and hands back everything from it on', () => {
    const rest = Buffer.concat([frame('zipped', true), frame('after')]);
    const cut = new MessageCutter(100).cut(Buffer.concat([frame('before'), rest]));
    expect(texts(cut.messages)).toEqual(['before']);
    expect(cut.compressed?.equals(rest)).toBe(true);
  });
});

const METHOD = rawBidiMethod('/test.Direct/Chat');

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

interface Served {
  /** Each request the handler got, and by which path. */
  readonly got: { text: string; via: 'direct' | 'grpc' }[];
  readonly events: string[];
  installed: boolean | undefined;
}

/** A grpc-js server whose one method reads its requests as fulcrum's xDS server does. */
async function serve(
  options: { interceptors?: grpc.ServerInterceptor[]; maxRequestBytes?: number; deliver?: (req: Buffer) => void } = {},
): Promise<{ client: grpc.Client; served: Served }> {
  const served: Served = { got: [], events: [], installed: undefined };
  const server = new grpc.Server({ interceptors: options.interceptors ?? [], 'grpc.max_receive_message_length': options.maxRequestBytes ?? 1024 });
  server.addService({ Chat: METHOD }, {
    Chat: (call: grpc.ServerDuplexStream<Buffer, readonly Uint8Array[]>) => {
      served.installed = readDirectly(call, options.deliver ?? ((req) => served.got.push({ text: req.toString(), via: 'direct' })));
      call.on('data', (req: Buffer) => served.got.push({ text: req.toString(), via: 'grpc' }));
      call.on('end', () => {
        served.events.push(`end after ${served.got.length}`);
        call.end();
      });
    },
  });
  const port = await bindLocal(server);
  return { client: connect(port), served };

  function connect(p: number): grpc.Client {
    const client = localClient(p);
    cleanup.push(() => client.close());
    cleanup.push(() => server.forceShutdown());
    return client;
  }
}

/** Sends `messages`, then half-closes; resolves with the call's status. */
function send(client: grpc.Client, messages: readonly Buffer[]): Promise<grpc.StatusObject> {
  const call = client.makeBidiStreamRequest(METHOD.path, METHOD.requestSerialize, METHOD.responseDeserialize);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => undefined);
  call.on('data', () => undefined);
  for (const m of messages) call.write(m);
  call.end();
  return status;
}

describe('reading requests below grpc-js', () => {
  it('hands over every request directly, in order, and the half-close after them', async () => {
    const { client, served } = await serve();
    const messages = Array.from({ length: 50 }, (_, i) => Buffer.from(`m${i}:${'x'.repeat(i * 15)}`));
    const status = await send(client, messages);
    expect(status.code).toBe(grpc.status.OK);
    expect(served.installed).toBe(true);
    expect(served.got.map((g) => g.text)).toEqual(messages.map(String));
    expect(new Set(served.got.map((g) => g.via))).toEqual(new Set(['direct']));
    expect(served.events).toEqual(['end after 50']);
  });

  it('refuses a request over the size limit with grpc-js\'s own status', async () => {
    const { client, served } = await serve({ maxRequestBytes: 100 });
    const status = await send(client, [Buffer.from('small'), Buffer.alloc(101, 1), Buffer.from('never')]);
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toBe('Received message larger than max (101 vs 100)');
    expect(served.got.map((g) => g.text)).toEqual(['small']);
  });

  it('a request whose handling throws ends its call with INTERNAL, not the process', async () => {
    const { client } = await serve({
      deliver: () => {
        throw new Error('boom');
      },
    });
    const status = await send(client, [Buffer.from('hello')]);
    expect(status.code).toBe(grpc.status.INTERNAL);
    expect(status.details).toBe('internal error');
  });

  it('reads nothing of a call an interceptor refused on its metadata', async () => {
    const refuse: grpc.ServerInterceptor = (_method, call) =>
      new grpc.ServerInterceptingCall(call, {
        start: (next) => next({ onReceiveMetadata: () => call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: 'no' }) }),
      });
    const { client, served } = await serve({ interceptors: [refuse] });
    const status = await send(client, [Buffer.from('hello')]);
    expect(status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(served.installed).toBeUndefined();
    expect(served.got).toEqual([]);
  });

  it('passes through interceptors that admit the call, still reading directly', async () => {
    const seen: string[] = [];
    const admit: grpc.ServerInterceptor = (_method, call) =>
      new grpc.ServerInterceptingCall(call, { start: (next) => next({ onReceiveMetadata: (md, pass) => (seen.push('metadata'), pass(md)) }) });
    const { client, served } = await serve({ interceptors: [admit, admit] });
    expect((await send(client, [Buffer.from('a'), Buffer.from('b')])).code).toBe(grpc.status.OK);
    expect(seen).toEqual(['metadata', 'metadata']);
    expect(served.got).toEqual([
      { text: 'a', via: 'direct' },
      { text: 'b', via: 'direct' },
    ]);
  });

  it('a compressing client: grpc-js reads the call from its first compressed message on, in order', async () => {
    const { served, client: plain } = await serve();
    // The same server, dialled by a client that compresses its messages.
    const target = plain.getChannel().getTarget().replace(/^dns:/, '');
    const zipping = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    cleanup.push(() => zipping.close());
    const messages = Array.from({ length: 20 }, (_, i) => Buffer.from(`z${i}:${'y'.repeat(200)}`));
    expect((await send(zipping, messages)).code).toBe(grpc.status.OK);
    await waitFor(() => served.events.length === 1, { what: 'the half-close', timeoutMs: 10_000 });
    expect(served.got.map((g) => g.text)).toEqual(messages.map(String));
    expect(served.got.some((g) => g.via === 'grpc')).toBe(true);
    expect(served.events).toEqual(['end after 20']);
  });
});
