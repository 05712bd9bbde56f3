/**
 * The wire format of a batch of RoutedFrames between processes (live-redis.ts): length-prefixed
 * binary, so a frame (already-serialized JSON) is copied once into the message and read back as a
 * slice of it — never escaped into, or parsed out of, another JSON string.
 *
 *   u8 version (1), then per frame:
 *   u16 userId bytes · userId (UTF-8) · f64 seq (-1: null) · u32 frame bytes · frame
 *
 * Decoded frames are views of the message buffer (no copy). A message this version cannot read
 * (another version, truncated) decodes to an error, never to partial frames.
 */
import type { RoutedFrame } from '../core/ports-realtime.ts';

const VERSION = 1;
const NO_SEQ = -1;

/**
 * The one message that is not frames: "a topic notification was accepted" (LiveFrames.topicAccepted).
 * One byte that is not a version, so a gateway of another version counts it undecodable, no more.
 */
export const TOPIC_ACCEPTED = Buffer.from([0x54]);

export function isTopicAccepted(message: Buffer): boolean {
  return message.length === 1 && message[0] === TOPIC_ACCEPTED[0];
}

/**
 * A node's message to its own channel, proving its subscription is live again after a reconnect
 * (live-redis.ts). Only ever sent to the sender's own channel.
 */
export const PROBE = Buffer.from([0x50]);

export function isProbe(message: Buffer): boolean {
  return message.length === 1 && message[0] === PROBE[0];
}

export function encodeFrames(frames: readonly RoutedFrame[]): Buffer {
  let size = 1;
  const users: Buffer[] = [];
  for (const f of frames) {
    const u = Buffer.from(f.userId, 'utf8');
    if (u.length > 0xffff) throw new RangeError(`userId longer than 65535 bytes: ${f.userId.slice(0, 40)}…`);
    users.push(u);
    size += 2 + u.length + 8 + 4 + f.frame.length;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt8(VERSION, 0);
  let at = 1;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as RoutedFrame;
    const u = users[i] as Buffer;
    at = out.writeUInt16BE(u.length, at);
    at += u.copy(out, at);
    at = out.writeDoubleBE(f.seq ?? NO_SEQ, at);
    at = out.writeUInt32BE(f.frame.length, at);
    at += f.frame.copy(out, at);
  }
  return out;
}

export function decodeFrames(message: Buffer): RoutedFrame[] {
  if (message.length < 1 || message.readUInt8(0) !== VERSION) {
    throw new Error(`live frames: unknown message version ${message.length ? message.readUInt8(0) : 'none'}`);
  }
  const out: RoutedFrame[] = [];
  let at = 1;
  while (at < message.length) {
    if (at + 2 > message.length) throw new Error('live frames: truncated message');
    const ulen = message.readUInt16BE(at);
    at += 2;
    const head = at + ulen + 8 + 4;
    if (head > message.length) throw new Error('live frames: truncated message');
    const userId = message.toString('utf8', at, at + ulen);
    at += ulen;
    const seq = message.readDoubleBE(at);
    at += 8;
    const flen = message.readUInt32BE(at);
    at += 4;
    if (at + flen > message.length) throw new Error('live frames: truncated message');
    out.push({ userId, seq: seq === NO_SEQ ? null : seq, frame: message.subarray(at, at + flen) });
    at += flen;
  }
  return out;
}
