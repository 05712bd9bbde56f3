/** The live frames' wire format: what goes in comes out, in order, and a damaged message is refused whole. */
import { describe, expect, it } from 'vitest';
import type { RoutedFrame } from '../core/ports-realtime.ts';
import { decodeFrames, encodeFrames } from './live-frame-codec.ts';

const frame = (userId: string, seq: number | null, body: string): RoutedFrame => ({
  userId,
  seq,
  frame: Buffer.from(body, 'utf8'),
});

describe('live frame codec', () => {
  it('round-trips frames in order, with unicode users, null seqs, empty and binary frames', () => {
    const frames = [
      frame('u-1', 1, '{"type":"notification","seq":1,"title":"héllo \\"q\\""}'),
      frame('ユーザー', null, '{"type":"unread","count":3}'),
      frame('u-1', 2 ** 40, ''),
      { userId: 'b', seq: 7, frame: Buffer.from([0, 255, 10, 13]) },
    ];
    const back = decodeFrames(encodeFrames(frames));
    expect(back.map((f) => ({ ...f, frame: Buffer.from(f.frame).toString('hex') }))).toEqual(
      frames.map((f) => ({ ...f, frame: f.frame.toString('hex') })),
    );
  });

  it('encodes no frames as a message of no frames', () => {
    expect(decodeFrames(encodeFrames([]))).toEqual([]);
  });

  it('refuses a truncated message or another version instead of returning part of it', () => {
    const msg = encodeFrames([frame('u', 1, 'abcdef'), frame('v', 2, 'ghijkl')]);
    expect(() => decodeFrames(msg.subarray(0, msg.length - 1))).toThrow(/truncated/);
    const other = Buffer.from(msg);
    other.writeUInt8(2, 0);
    expect(() => decodeFrames(other)).toThrow(/version/);
    expect(() => decodeFrames(Buffer.alloc(0))).toThrow(/version/);
  });
});
