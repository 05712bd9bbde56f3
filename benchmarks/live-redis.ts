/**
 * live-redis: the Redis adapters of the distributed real-time path, measured on their own (no Herald).
 *
 * 1. latency — a gateway process (a child: its own event loop and connections) subscribes as node
 *    `g1` and holds `--users` users; this process publishes `--rate` frames/s for `--seconds`, one
 *    frame per publish (one per committed entry, the worst case for per-call overhead). Each frame
 *    carries its send time (wall clock, µs: both processes read the same system clock); the
 *    gateway reports publish → handler latency p50/p99/max and how many frames arrived.
 * 2. refresh — `RedisPresence.refresh` of `--refresh-users` users (one gateway's heartbeat), ms per
 *    call over 20 calls, after a warm-up; and a lookup (`nodesOf`) of 100 users.
 * 3. codec — encode + decode of a batch of 10 frames of ~300 bytes: the binary format of
 *    live-frame-codec.ts against a JSON array of [userId, seq, frameString].
 *
 *   node --import tsx benchmarks/live-redis.ts [--cluster] [--rate 1000] [--seconds 10] [--users 1000] [--refresh-users 10000]
 *
 * `--cluster` runs against a private three-node Redis Cluster (started and removed by the script);
 * otherwise REDIS_URL or redis://127.0.0.1:6379. Prints a table; writes JSON to bench-results/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { RoutedFrame } from '../src/core/ports-realtime.ts';
import { decodeFrames, encodeFrames } from '../src/realtime/live-frame-codec.ts';
import { RedisLiveFrames } from '../src/realtime/live-redis.ts';
import { RedisPresence } from '../src/realtime/presence-redis.ts';
import { connectRedis } from '../src/redis-connection.ts';
import { freshPrefix, privateCluster } from '../test/support/redis.ts';
import { machineNote, printTable, writeResult } from './lib/report.ts';
import { median, percentile, sleep, summarize } from './lib/stats.ts';

const { values: args } = parseArgs({
  options: {
    cluster: { type: 'boolean', default: false },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    users: { type: 'string', default: '1000' },
    'refresh-users': { type: 'string', default: '10000' },
    // Internal: run as the gateway child.
    gateway: { type: 'string' },
    prefix: { type: 'string' },
    expect: { type: 'string' },
  },
});

const wallUs = () => (performance.timeOrigin + performance.now()) * 1000;

if (args.gateway) await gateway(args.gateway, args.prefix ?? '', Number(args.users), Number(args.expect));
else await main();

/** The child: subscribes as g1, holds the users, and reports latencies once `expect` frames arrived (or it is told to stop). */
async function gateway(url: string, prefix: string, users: number, expect: number): Promise<void> {
  const client = connectRedis(url);
  const presence = new RedisPresence(client, { prefix });
  const live = new RedisLiveFrames(client, presence, { prefix });
  const latencies: number[] = [];
  let finish = () => {};
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  await live.subscribe('g1', {
    frames(frames: readonly RoutedFrame[]) {
      const now = wallUs();
      for (const f of frames) {
        const sent = Number(JSON.parse(f.frame.toString()).sentUs);
        latencies.push((now - sent) / 1000);
      }
      if (latencies.length >= expect) finish();
    },
    resync() {},
    topicAccepted() {},
  });
  await presence.refresh('g1', new Map(Array.from({ length: users }, (_, i) => [`user-${i}`, 1])));
  process.stdout.write('ready\n');
  createInterface({ input: process.stdin }).on('line', () => finish());
  await finished;
  process.stdout.write(`${JSON.stringify({ ...summarize(latencies), received: live.received })}\n`);
  await live.close();
  client.disconnect();
}

async function main(): Promise<void> {
  const rate = Number(args.rate);
  const seconds = Number(args.seconds);
  const users = Number(args.users);
  const refreshUsers = Number(args['refresh-users']);
  const cluster = args.cluster ? await privateCluster() : null;
  const url = cluster?.url ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const prefix = freshPrefix();
  const total = rate * seconds;
  const client = connectRedis(url);
  try {
    // --- latency ---
    const child: ChildProcess = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        import.meta.filename,
        '--gateway',
        url,
        '--prefix',
        prefix,
        '--users',
        String(users),
        '--expect',
        String(total),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
    if ((await lines.next()).value !== 'ready') throw new Error('gateway did not start');
    const presence = new RedisPresence(client, { prefix });
    const live = new RedisLiveFrames(client, presence, { prefix });
    const pad = 'x'.repeat(220);
    const started = performance.now();
    let sent = 0;
    // Paced in 10 ms slices: each slice publishes its share one frame per call.
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      while (sent < due) {
        const userId = `user-${sent % users}`;
        const body = `{"type":"notification","seq":${sent + 1},"sentUs":${Math.round(wallUs())},"pad":"${pad}"}`;
        void live.publish([{ userId, seq: sent + 1, frame: Buffer.from(body) }]);
        sent++;
      }
      await sleep(10);
    }
    const sendSeconds = (performance.now() - started) / 1000;
    const stop = setTimeout(() => child.stdin?.write('stop\n'), 5_000);
    const result = JSON.parse((await lines.next()).value as string) as ReturnType<typeof summarize> & {
      received: number;
    };
    clearTimeout(stop);
    child.stdin?.end();

    // --- refresh ---
    const heartbeat = new Map<string, number>();
    for (let i = 0; i < refreshUsers; i++) heartbeat.set(`r-${i}`, 1 + (i % 3));
    const rp = new RedisPresence(client, { prefix });
    await rp.refresh('g-refresh', heartbeat);
    const refreshMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await rp.refresh('g-refresh', heartbeat);
      refreshMs.push(performance.now() - t);
    }
    const lookupIds = Array.from({ length: 100 }, (_, i) => `r-${i * 7}`);
    const lookupMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      await rp.nodesOf(lookupIds);
      lookupMs.push(performance.now() - t);
    }

    // --- codec ---
    const batch: RoutedFrame[] = Array.from({ length: 10 }, (_, i) => ({
      userId: `user-${i}`,
      seq: 1000 + i,
      frame: Buffer.from(
        `{"type":"notification","seq":${1000 + i},"title":"Your order \\"42\\" shipped","pad":"${pad}"}`,
      ),
    }));
    const codec = (encode: () => Buffer, decode: (b: Buffer) => unknown) => {
      const n = 20_000;
      const t = performance.now();
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const b = encode();
        bytes = b.length;
        decode(b);
      }
      return { usPerBatch: ((performance.now() - t) * 1000) / n, bytes };
    };
    const binary = codec(
      () => encodeFrames(batch),
      (b) => decodeFrames(b),
    );
    const json = codec(
      () => Buffer.from(JSON.stringify(batch.map((f) => [f.userId, f.seq, f.frame.toString()]))),
      (b) =>
        (JSON.parse(b.toString()) as [string, number | null, string][]).map(([userId, seq, frame]) => ({
          userId,
          seq,
          frame: Buffer.from(frame),
        })),
    );

    const row = {
      redis: cluster ? 'cluster (3)' : 'single',
      rate: Math.round(total / sendSeconds),
      frames: total,
      received: result.received,
      p50: result.p50,
      p99: result.p99,
      max: result.max,
      refreshUsers,
      refreshMedian: median(refreshMs),
      refreshP90: percentile(refreshMs, 90),
      lookup100: median(lookupMs),
      binaryUs: binary.usPerBatch,
      jsonUs: json.usPerBatch,
      binaryBytes: binary.bytes,
      jsonBytes: json.bytes,
    };
    printTable(
      [
        { key: 'redis', label: 'redis' },
        { key: 'rate', label: 'frames/s' },
        { key: 'received', label: 'received' },
        { key: 'p50', label: 'p50 ms', digits: 2 },
        { key: 'p99', label: 'p99 ms', digits: 2 },
        { key: 'max', label: 'max ms', digits: 1 },
        { key: 'refreshMedian', label: `refresh ${refreshUsers} ms`, digits: 1 },
        { key: 'refreshP90', label: 'refresh p90 ms', digits: 1 },
        { key: 'lookup100', label: 'nodesOf(100) ms', digits: 2 },
        { key: 'binaryUs', label: 'binary µs/10', digits: 1 },
        { key: 'jsonUs', label: 'json µs/10', digits: 1 },
      ],
      [row],
    );
    console.log(JSON.stringify(machineNote()));
    console.log(
      `results: ${await writeResult('live-redis', cluster ? 'cluster' : 'single', { row, machine: machineNote() })}`,
    );
    await live.close();
  } finally {
    client.disconnect();
    await cluster?.cleanup();
  }
}
