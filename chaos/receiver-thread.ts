/**
 * A counting receiver (counting-receiver.ts) on a worker thread of its own: its event loop, not the
 * caller's, takes the requests. For a receiver that takes a flood (bulk-critical's 200,000 bulk
 * webhooks) beside one whose arrival times are measured: on the caller's loop, the flood would
 * delay the measured arrivals (and the caller's own POSTs) by the time the loop spends on it.
 *
 * The counts are read at the end, in one message (`snapshot`); the thread is the same receiver, so
 * what it counts and how is counting-receiver.ts's.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { startCountingReceiver } from './counting-receiver.ts';

export interface ReceiverSnapshot {
  /** The webhook-ids that arrived. */
  arrivals: Set<string>;
  requests: number;
  delivered: number;
  duplicated: number;
  badSignatures: number;
  splitIds: number;
}

export interface ThreadReceiver {
  url: string;
  snapshot(): Promise<ReceiverSnapshot>;
  close(): Promise<void>;
}

type Reply = { url: string } | { snapshot: Omit<ReceiverSnapshot, 'arrivals'> & { arrivals: string[] } };

export async function startReceiverThread(options: { secret?: string } = {}): Promise<ThreadReceiver> {
  const worker = new Worker(new URL('./receiver-thread-boot.mjs', import.meta.url), { workerData: options });
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      worker.once('error', onError);
      worker.once('message', (m: Reply) => {
        worker.off('error', onError);
        resolve(m);
      });
    });
  const first = await next();
  if (!('url' in first)) throw new Error('receiver thread: no url');
  return {
    url: first.url,
    async snapshot() {
      const reply = next();
      worker.postMessage('snapshot');
      const m = await reply;
      if (!('snapshot' in m)) throw new Error('receiver thread: no snapshot');
      return { ...m.snapshot, arrivals: new Set(m.snapshot.arrivals) };
    },
    async close() {
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const receiver = await startCountingReceiver(workerData as { secret?: string });
  port.on('message', () => {
    port.postMessage({
      snapshot: {
        arrivals: [...receiver.arrivals.keys()],
        requests: receiver.requests(),
        delivered: receiver.delivered(),
        duplicated: receiver.duplicated(),
        badSignatures: receiver.badSignatures(),
        splitIds: receiver.splitIds(),
      },
    } satisfies Reply);
  });
  port.postMessage({ url: receiver.url } satisfies Reply);
}
