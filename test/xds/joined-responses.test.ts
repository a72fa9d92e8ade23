import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES } from '../../src/xds/framed-writes.js';
import { joinResponse } from '../../src/xds/joined-responses.js';

const tail = (nonce: string, cp: string): Uint8Array => Buffer.from(`|${nonce}|${cp}`);

describe('joined responses', () => {
  it('shares one response per (head, nonce, control plane) and keeps each tail its own', () => {
    const head = Buffer.from('head');
    const a = joinResponse(head, '1', 'cp-a', tail);
    expect(joinResponse(head, '1', 'cp-a', tail)).toBe(a);
    expect(Buffer.from(a).toString()).toBe('head|1|cp-a');
    const otherPlane = joinResponse(head, '1', 'cp-b', tail);
    expect(Buffer.from(otherPlane).toString()).toBe('head|1|cp-b');
    expect(Buffer.from(joinResponse(head, '1', 'cp-a', tail)).toString()).toBe('head|1|cp-a');
    expect(Buffer.from(joinResponse(head, '2', 'cp-a', tail)).toString()).toBe('head|2|cp-a');
  });

  it('frames the message: a gRPC header precedes it in the same buffer', () => {
    const m = joinResponse(Buffer.from('xy'), '9', 'cp', tail);
    const framed = new Uint8Array(m.buffer, m.byteOffset - FRAME_HEADER_BYTES, m.byteLength + FRAME_HEADER_BYTES);
    expect(framed[0]).toBe(0);
    expect(new DataView(framed.buffer, framed.byteOffset + 1, 4).getUint32(0)).toBe(m.byteLength);
  });
});
