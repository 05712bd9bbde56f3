/** What a benchmark scenario is: a name, its columns, and one trial per store. */
import type { StoreKind } from './herald-process.ts';
import type { Cell, Column } from './report.ts';

export interface BenchOptions {
  /** Measured seconds (ingest). Default 10. */
  duration: number;
  /** Warm-up seconds before measuring (ingest). Default 2. */
  warmup: number;
  /** HTTP connections of the load generator (ingest). Default 100. */
  connections: number;
  /** Herald with every role (`all`, as `npm start`) and/or with `--role api` only (ingest). Default ['all']. */
  roleSets: ('all' | 'api')[];
  /** The ingest load generator: wrk (Debian's package; the default where it is installed) or autocannon. */
  load: 'wrk' | 'autocannon';
  /** Also measure a bare Fastify POST→202 server with the same load: the machine's ceiling at that moment (ingest). */
  ceiling: boolean;
  /** Notifications to deliver (deliver). Default 20,000. */
  count: number;
  /** Users with a webhookUrl (deliver). Default 1,000. */
  users: number;
  /** Critical notifications per phase (priority). Default 200. */
  critical: number;
  /** Critical notifications per second (priority). Default 20. */
  rate: number;
  /** Bulk deliveries queued before the second phase (priority). Default 100,000. */
  blast: number;
  /** Subscribers of the topic (fanout). Default 1,000,000. */
  subscribers: number;
  /** Webhook deliveries to a receiver failing half of all requests (retry-storm). Default 10,000. */
  deliveries: number;
  /** Batch requests kept in flight (batch). Default 4. */
  inFlight: number;
  /** Extra environment for Herald, from repeated --env KEY=VALUE. */
  env: Record<string, string>;
  /** Folder for V8 CPU profiles of Herald (--cpu-prof). */
  cpuProfDir: string | undefined;
}

export interface TrialResult {
  /** One row per variant measured in this trial (e.g. all roles / api only). */
  rows: Record<string, Cell>[];
  /** Anything else worth keeping in the JSON file. */
  details?: unknown;
}

export interface Scenario {
  name: string;
  summary: string;
  columns: Column[];
  /** The column that decides which run is the best. */
  headline: string;
  /** The stores it can run on, when not every one (the distributed mode needs PostgreSQL). */
  stores?: readonly StoreKind[];
  /** One trial on one store, on a fresh Herald and a fresh database. */
  trial(store: StoreKind, options: BenchOptions, log: (message: string) => void): Promise<TrialResult>;
}
