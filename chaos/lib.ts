/**
 * The chaos harness in one import: a cluster of Herald processes to kill and restart
 * (cluster.ts), a TCP balancer in front of the gateways (balancer.ts), a webhook receiver that
 * counts per webhook-id (counting-receiver.ts), the API as a producer sees it (api.ts), what the
 * store says (store-checks.ts), SDK clients that count seqs per user (sdk-fleet.ts) and the
 * verdict line (verdict.ts). Scenarios live in scenarios/, one function each, sized by `Size`.
 */
export * from './api.ts';
export * from './balancer.ts';
export * from './cluster.ts';
export * from './counting-receiver.ts';
export * from './sdk-fleet.ts';
export * from './store-checks.ts';
export * from './verdict.ts';

/** `full`: the sizes the scenario is specified at; `short`: small enough for `npm test`. */
export type Size = 'full' | 'short';

export interface ScenarioResult {
  pass: boolean;
  /** The VERDICT line. */
  line: string;
  /** Numbers behind the verdict, written to the JSON result. */
  details: Record<string, unknown>;
}

/** A scenario: runs at `size`, reports progress through `log`, always ends with its verdict line. */
export type Scenario = (size: Size, log: (line: string) => void) => Promise<ScenarioResult>;
