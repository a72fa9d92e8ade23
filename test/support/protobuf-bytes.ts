/** Hand-built protobuf bytes, for messages no encoder would make (hostile sizes, empty entries by the million). */

/** A protobuf varint. */
export function varint(n: number): number[] {
  const out: number[] = [];
  for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
  out.push(n);
  return out;
}

/** A length-delimited field (`tag` is field << 3 | 2). */
export const field = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag, ...varint(body.length)]), body]);
