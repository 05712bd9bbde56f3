/**
 * A WebSocket client written against the wire format (RFC 6455) for what `ws` will not do: write
 * many pre-built frames in one write (a flood that costs the test process nothing while the server
 * parses it), or frames a well-behaved client never sends. It records the server's text frames and
 * its close frame, answers pings, and answers a close frame with one.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { realtimeUrl, type ServerMessage } from './ws-client.ts';

export interface RawSocket {
  /** The server's text frames, parsed, in arrival order. */
  readonly messages: ServerMessage[];
  /** Resolves with the server's close frame (code 1005 without one, 1006 when the TCP connection just ended). */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Writes bytes as they are (build them with `clientFrame`). */
  write(bytes: Buffer): void;
  destroy(): void;
}

const OP = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One client frame (FIN set, masked as a client must): a text frame by default. */
export function clientFrame(payload: string | Buffer, opcode: number = OP.text): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const n = data.length;
  const lenBytes = n < 126 ? 0 : n < 65_536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + 4);
  head[0] = 0x80 | opcode;
  if (lenBytes === 0) head[1] = 0x80 | n;
  else if (lenBytes === 2) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  const mask = randomBytes(4);
  mask.copy(head, 2 + lenBytes);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = (data[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([head, body]);
}

/** Upgrades to /v1/realtime with `token`; rejects with the HTTP status line when refused. */
export function rawConnect(baseUrl: string, token: string): Promise<RawSocket> {
  const url = new URL(realtimeUrl(baseUrl, token));
  const socket: Socket = netConnect(Number(url.port), url.hostname);
  const messages: ServerMessage[] = [];
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  let closeFrame: { code: number; reason: string } | null = null;
  let resolveClosed!: (c: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => {
    resolveClosed = r;
  });
  const raw: RawSocket = {
    messages,
    closed,
    write: (bytes) => {
      socket.write(bytes);
    },
    destroy: () => {
      socket.destroy();
    },
  };

  return new Promise((resolve, reject) => {
    socket.on('connect', () => {
      socket.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    socket.on('error', (e) => {
      if (!upgraded) reject(e);
    });
    socket.on('close', () => {
      resolveClosed(closeFrame ?? { code: 1006, reason: '' });
      if (!upgraded) reject(new Error('connection closed before the upgrade'));
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const statusLine = buffer.subarray(0, buffer.indexOf('\r\n')).toString();
        if (!/^HTTP\/1\.1 101 /.test(statusLine)) {
          reject(new Error(`upgrade refused: ${statusLine}`));
          socket.destroy();
          return;
        }
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        resolve(raw);
      }
      parseFrames();
    });
  });

  function parseFrames(): void {
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = (buffer[0] as number) & 0x0f;
      let len = (buffer[1] as number) & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buffer.length < 4) return;
        len = buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buffer.length < 10) return;
        len = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer.length < offset + len) return;
      const payload = buffer.subarray(offset, offset + len);
      buffer = buffer.subarray(offset + len);
      if (opcode === OP.text) {
        const text = payload.toString('utf8');
        try {
          messages.push(JSON.parse(text) as ServerMessage);
        } catch {
          messages.push({ type: '(not json)', text });
        }
      } else if (opcode === OP.ping) {
        if (!socket.destroyed) socket.write(clientFrame(Buffer.from(payload), OP.pong));
      } else if (opcode === OP.close) {
        closeFrame =
          payload.length >= 2
            ? { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') }
            : { code: 1005, reason: '' };
        if (!socket.destroyed) socket.end(clientFrame(payload.subarray(0, 2), OP.close));
        return;
      }
    }
  }
}
