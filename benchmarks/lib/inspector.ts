/**
 * The V8 inspector of a Herald child process (started with --inspect on a port of ours, through
 * NODE_OPTIONS), for memory measurements: force a full garbage collection before reading RSS, so
 * that what is compared is live memory rather than garbage V8 has not collected yet, and write
 * heap snapshots for investigations.
 */
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import WebSocket from 'ws';

/** A free TCP port on 127.0.0.1. */
export function freeLocalPort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => ok(port));
    });
  });
}

/** Environment that makes a Node process listen for the inspector on 127.0.0.1:port. */
export function inspectorEnv(port: number, env: Record<string, string> = {}): Record<string, string> {
  return { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:${port}`.trim() };
}

export interface Inspector {
  /** A full, compacting garbage collection (HeapProfiler.collectGarbage). */
  collectGarbage(): Promise<void>;
  /** Writes a .heapsnapshot file (readable by Chrome DevTools). */
  heapSnapshot(file: string): Promise<void>;
  close(): void;
}

export async function connectInspector(port: number, timeoutMs = 10_000): Promise<Inspector> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const target = list[0]?.webSocketDebuggerUrl;
  if (!target) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(target, { perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  let nextId = 0;
  const pending = new Map<number, (result: unknown) => void>();
  let onChunk: ((chunk: string) => void) | null = null;
  ws.on('message', (data: Buffer) => {
    const m = JSON.parse(data.toString('utf8')) as { id?: number; method?: string; params?: { chunk?: string } };
    if (m.id !== undefined) {
      pending.get(m.id)?.(m);
      pending.delete(m.id);
    } else if (m.method === 'HeapProfiler.addHeapSnapshotChunk' && m.params?.chunk) onChunk?.(m.params.chunk);
  });
  const call = (method: string, params: object = {}, ms = timeoutMs) =>
    new Promise<unknown>((ok, fail) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        fail(new Error(`inspector: ${method} did not answer within ${ms} ms`));
      }, ms);
      pending.set(id, (r) => {
        clearTimeout(timer);
        ok(r);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    async collectGarbage() {
      await call('HeapProfiler.collectGarbage');
    },
    async heapSnapshot(file) {
      const out = createWriteStream(file);
      onChunk = (chunk) => out.write(chunk);
      try {
        await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false }, 300_000);
      } finally {
        onChunk = null;
        await new Promise<void>((r) => out.end(() => r()));
      }
    },
    close: () => ws.close(),
  };
}
