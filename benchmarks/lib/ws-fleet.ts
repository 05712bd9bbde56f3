/**
 * A fleet of WebSocket clients in a separate process (lib/ws-fleet-process.ts): the benchmark
 * drives it with calls that each answer once (or fail after their own time limit).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { sleep } from './stats.ts';
import type {
  AwaitSamplesResult,
  ConnectRequest,
  ConnectResult,
  FleetAnswer,
  FleetMessage,
  FleetRequest,
  FleetStatus,
  Receipts,
  SeqVerification,
} from './ws-fleet-protocol.ts';

const REPO = resolve(import.meta.dirname, '..', '..');
const SCRIPT = resolve(import.meta.dirname, 'ws-fleet-process.ts');
/** Extra time a call gets beyond its own timeout before the fleet is declared stuck. */
const SLACK_MS = 30_000;

export interface Fleet {
  pid: number;
  connect(r: Omit<ConnectRequest, 'cmd'>): Promise<ConnectResult>;
  chaos(r: { durationMs: number; dropsPerClient: number; maxOfflineMs: number; seed: number }): Promise<{
    scheduled: number;
  }>;
  /** Stops the chaos, waits until every user has seqs 1..expected (or the timeout), and checks them. */
  awaitSeqs(expected: Record<string, number>, timeoutMs: number): Promise<SeqVerification>;
  /** Waits until `count` latency samples were collected in all (or the timeout). */
  awaitSamples(count: number, timeoutMs: number): Promise<AwaitSamplesResult>;
  /** Latency samples in ms (POST → receipt); `clear` starts a new series. */
  samples(clear: boolean): Promise<Float64Array>;
  /** Notification id and receipt time (monotonicMs) of each sample since the last clear. */
  receipts(): Promise<Receipts>;
  status(): Promise<FleetStatus>;
  disconnect(timeoutMs?: number): Promise<{ closed: number }>;
  /** Ends the process (disconnecting first when it still answers). */
  stop(): Promise<void>;
  logTail(): string;
}

export async function startFleet(): Promise<Fleet> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SCRIPT], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
  });
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) tail.push(line);
    if (tail.length > 100) tail.splice(0, tail.length - 100);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const logTail = () => tail.slice(-20).join('\n');

  let exited = false;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const gone = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      exited = true;
      for (const p of pending.values())
        p.reject(new Error(`the client process exited (${code ?? signal}):\n${logTail()}`));
      pending.clear();
      r();
    }),
  );
  child.on('message', (a: FleetAnswer) => {
    const p = pending.get(a.id);
    if (!p) return;
    pending.delete(a.id);
    if (a.ok) p.resolve(a.result);
    else p.reject(new Error(`client process: ${a.error}`));
  });

  let nextId = 0;
  const call = <T>(request: FleetRequest, timeoutMs: number): Promise<T> => {
    if (exited) return Promise.reject(new Error(`the client process has exited:\n${logTail()}`));
    const id = ++nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`client process: ${request.cmd} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ id, request } satisfies FleetMessage);
    });
  };

  // The process is up when it answers.
  await call<FleetStatus>({ cmd: 'status' }, 60_000);

  const stop = async () => {
    if (exited) return;
    await call({ cmd: 'disconnect', timeoutMs: 10_000 }, 20_000).catch(() => {});
    child.disconnect();
    const done = await Promise.race([gone.then(() => true), sleep(5_000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await gone;
    }
  };

  return {
    pid: child.pid as number,
    connect: (r) => call({ cmd: 'connect', ...r }, r.timeoutMs + SLACK_MS),
    chaos: (r) => call({ cmd: 'chaos', ...r }, SLACK_MS),
    awaitSeqs: (expected, timeoutMs) => call({ cmd: 'awaitSeqs', expected, timeoutMs }, timeoutMs + SLACK_MS),
    awaitSamples: (count, timeoutMs) => call({ cmd: 'awaitSamples', count, timeoutMs }, timeoutMs + SLACK_MS),
    samples: (clear) => call({ cmd: 'samples', clear }, SLACK_MS),
    receipts: () => call({ cmd: 'receipts' }, SLACK_MS),
    status: () => call({ cmd: 'status' }, SLACK_MS),
    disconnect: (timeoutMs = 10_000) => call({ cmd: 'disconnect', timeoutMs }, timeoutMs + SLACK_MS),
    stop,
    logTail,
  };
}
