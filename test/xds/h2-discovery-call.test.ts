/**
 * H2DiscoveryCall on a bare node:http2 server (no grpc-js on the server side), driven by a bare
 * HTTP/2 client that can send what a gRPC client would not: what a discovery stream's transport
 * owes its client (headers, framing, status as trailers or trailers-only, limits) and the server.
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CallListener } from '../../src/xds/discovery-call.js';
import { framedMessage } from '../../src/xds/framed-writes.js';
import { H2DiscoveryCall } from '../../src/xds/h2-discovery-call.js';
import { callEnd, connectH2, grpcFrame, openCall } from '../support/raw-grpc.js';
import { waitFor } from '../support/wait.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Seen {
  readonly requests: string[];
  readonly written: number[];
  ended: number;
  closed: number;
}

/** A server whose every stream is an H2DiscoveryCall of text requests; `onCall` drives it. */
async function serve(onCall: (call: H2DiscoveryCall<string>, seen: Seen) => Partial<CallListener<string>> = () => ({}), admit = true) {
  const calls: { call: H2DiscoveryCall<string>; seen: Seen }[] = [];
  const sizes: [string, number][] = [];
  const released: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream) => {
    const call = new H2DiscoveryCall<string>(stream, decode, {
      maxRequestBytes: 64,
      maxResponseBytes: 100,
      tooLarge: (limit, bytes) => (sizes.push([limit, bytes]), `${limit} ${bytes}`),
      release: (peer) => released.push(peer),
    });
    if (admit) call.admitted('peer-address');
    const seen: Seen = { requests: [], written: [], ended: 0, closed: 0 };
    calls.push({ call, seen });
    const own = onCall(call, seen);
    call.listen({
      request: (r) => seen.requests.push(r),
      end: () => (seen.ended += 1),
      closed: () => (seen.closed += 1),
      written: (b) => seen.written.push(b),
      ...own,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  const session = await connectH2((server.address() as AddressInfo).port);
  cleanup.push(() => session.destroy());
  return { calls, sizes, released, session };
}

/** Requests are text; "bad" does not decode. */
function decode(bytes: Buffer): string {
  const text = bytes.toString();
  if (text === 'bad') throw new Error('undecodable');
  return text;
}

const frame = (text: string): Buffer => grpcFrame(Buffer.from(text));
const response = (text: string): Uint8Array => framedMessage((out, at) => void Buffer.from(text).copy(out, at), Buffer.byteLength(text));

/** The gRPC messages in `data`, as text. */
function messages(data: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < data.length; ) {
    const length = data.readUInt32BE(at + 1);
    out.push(data.subarray(at + 5, at + 5 + length).toString());
    at += 5 + length;
  }
  return out;
}

function received(stream: http2.ClientHttp2Stream): { data: () => Buffer; headers: Promise<http2.IncomingHttpHeaders> } {
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  return { data: () => Buffer.concat(chunks), headers: new Promise((resolve) => stream.once('response', resolve)) };
}

describe('H2DiscoveryCall', () => {
  it('hands over requests in order, split or batched, then the half-close after them', async () => {
    const { calls, session } = await serve();
    const stream = openCall(session);
    const bytes = Buffer.concat([frame('one'), frame('two'), frame('three')]);
    stream.write(bytes.subarray(0, 7));
    stream.write(bytes.subarray(7));
    stream.end();
    await waitFor(() => calls[0]?.seen.ended === 1, { what: 'the half-close' });
    expect(calls[0]?.seen.requests).toEqual(['one', 'two', 'three']);
  });

  it('sends the response headers with the first message, messages in order, and OK as trailers', async () => {
    const { calls, session } = await serve((call) => ({
      request: (r) => {
        call.write([response(`re:${r}`)], 3 + r.length);
        if (r === 'last') call.end();
      },
    }));
    const stream = openCall(session);
    const got = received(stream);
    const end = callEnd(stream);
    stream.write(Buffer.concat([frame('a'), frame('b'), frame('last')]));
    const headers = await got.headers;
    expect(headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-encoding': 'identity' });
    expect(headers['grpc-status']).toBeUndefined();
    expect(headers.date).toBeUndefined();
    expect(await end).toMatchObject({ status: 0 });
    expect(messages(got.data())).toEqual(['re:a', 're:b', 're:last']);
    // Every write's count came back once, in order; the call is over for the server.
    await waitFor(() => calls[0]?.seen.written.length === 3, { what: 'three completions' });
    expect(calls[0]?.seen.written).toEqual([4, 4, 7]);
    expect(calls[0]?.call.over).toBe(true);
    expect(calls[0]?.seen.closed).toBeGreaterThanOrEqual(1);
  });

  it('a call never admitted gives no place back when it closes', async () => {
    const { calls, released, session } = await serve((call) => ({ request: () => call.end() }), false);
    const stream = openCall(session);
    const end = callEnd(stream);
    stream.write(frame('x'));
    expect((await end).status).toBe(0);
    await waitFor(() => calls[0]?.call.over === true, { what: 'the call over' });
    stream.close();
    await new Promise((resolve) => stream.once('close', resolve));
    await waitFor(() => (calls[0]?.seen.closed ?? 0) >= 2, { what: "the stream's close" });
    expect(released).toEqual([]);
  });

  it('frames responses given as plain parts too', async () => {
    const { session } = await serve((call) => ({ request: () => (call.write([Buffer.from('ab'), Buffer.from('cd')], 4), call.end()) }));
    const stream = openCall(session);
    const got = received(stream);
    const end = callEnd(stream);
    stream.write(frame('x'));
    expect((await end).status).toBe(0);
    expect(messages(got.data())).toEqual(['abcd']);
  });

  it('a status before any response is a trailers-only response, its message percent-encoded', async () => {
    const { calls, session } = await serve((call) => ({ request: () => call.fail(7, 'no: "ü" 100%') }));
    const stream = openCall(session);
    const got = received(stream);
    const end = callEnd(stream);
    stream.write(frame('x'));
    const headers = await got.headers;
    expect(headers['grpc-status']).toBe('7');
    expect(await end).toMatchObject({ status: 7, message: 'no: "ü" 100%', bytes: 0 });
    expect(calls[0]?.seen.closed).toBeGreaterThanOrEqual(1);
  });

  it('a lone surrogate in a status message arrives as U+FFFD, not as a thrown URIError', async () => {
    const { session } = await serve((call) => ({ request: () => call.fail(3, 'x\uD800y \uD83D\uDE00') }));
    const stream = openCall(session);
    const end = callEnd(stream);
    stream.write(frame('x'));
    expect(await end).toMatchObject({ status: 3, message: 'x\uFFFDy \uD83D\uDE00' });
  });

  it('refuses a request over the limit from its length prefix, naming the limit, and reads nothing more', async () => {
    const { calls, sizes, session } = await serve();
    const stream = openCall(session);
    const end = callEnd(stream);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1_000_000, 1);
    stream.write(Buffer.concat([frame('before'), head, Buffer.alloc(10)]));
    expect(await end).toMatchObject({ status: 8, message: 'maxRequestBytes 1000000' });
    expect(sizes).toEqual([['maxRequestBytes', 1_000_000]]);
    expect(calls[0]?.seen.requests).toEqual(['before']);
  });

  it('refuses a response over the limit, counting its bytes back', async () => {
    const { calls, sizes, session } = await serve((call) => ({ request: () => call.write([Buffer.alloc(101)], 101) }));
    const stream = openCall(session);
    const end = callEnd(stream);
    stream.write(frame('x'));
    expect(await end).toMatchObject({ status: 8, message: 'maxResponseBytes 101', bytes: 0 });
    expect(sizes).toEqual([['maxResponseBytes', 101]]);
    await waitFor(() => calls[0]?.seen.written.length === 1, { what: 'the refused write counted back' });
    expect(calls[0]?.seen.written).toEqual([101]);
  });

  it('ends the call with INTERNAL on an undecodable request, a compressed one, or a handler that throws', async () => {
    const { calls, session } = await serve((call, seen) => ({
      request: (r) => {
        if (r === 'throw') throw new Error('a bug');
        seen.requests.push(r);
      },
    }));
    const compressed = frame('zzz');
    compressed[0] = 1;
    const ends = await Promise.all(
      [frame('bad'), compressed, frame('throw')].map((bytes) => {
        const stream = openCall(session);
        const end = callEnd(stream);
        stream.write(Buffer.concat([bytes, frame('after')]));
        return end;
      }),
    );
    expect(ends.map((e) => [e.status, e.message])).toEqual([
      [13, 'Error deserializing request'],
      [13, 'a compressed message on a call without grpc-encoding'],
      [13, 'internal error'],
    ]);
    // Nothing after the message that ended each call was handed on.
    expect(calls.map((c) => c.seen.requests)).toEqual([[], [], []]);
  });

  it('a client that resets: closed runs, the place is given back once, the call is over, and a later write only counts back', async () => {
    const { calls, released, session } = await serve();
    const stream = openCall(session);
    stream.write(frame('x'));
    await waitFor(() => calls[0]?.seen.requests.length === 1, { what: 'the request' });
    // Not CANCEL: a reset with an error code is also an 'error' event on the server's stream.
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await waitFor(() => calls[0]?.seen.closed === 1, { what: 'closed' });
    expect(released).toEqual(['peer-address']);
    const call = calls[0]?.call;
    expect(call?.over).toBe(true);
    call?.write([response('late')], 4);
    await waitFor(() => calls[0]?.seen.written.length === 1, { what: 'the late write counted back' });
    expect(calls[0]?.seen.written).toEqual([4]);
  });
});

describe('H2DiscoveryCall on a stream going away', () => {
  it('a respond() that throws (stream or session closing) resets the stream instead of throwing into a push', () => {
    const stream = Object.assign(new EventEmitter(), {
      headersSent: false,
      destroyed: false,
      closed: false,
      session: undefined,
      respond: () => {
        throw new Error('ERR_HTTP2_INVALID_STREAM');
      },
      write: () => true,
      destroy: vi.fn(),
    });
    const call = new H2DiscoveryCall<string>(stream as unknown as http2.ServerHttp2Stream, decode, { maxRequestBytes: 64, maxResponseBytes: 100, tooLarge: () => '', release: () => undefined });
    const written: number[] = [];
    call.listen({ request: () => undefined, end: () => undefined, closed: () => undefined, written: (b) => written.push(b) });
    expect(() => call.write([response('x')], 1)).not.toThrow();
    expect(stream.destroy).toHaveBeenCalledTimes(1);
    return waitFor(() => written.length === 1, { what: 'the write counted back' });
  });
});
