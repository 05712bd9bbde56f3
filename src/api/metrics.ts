/** Prometheus metrics, fed by the core's typed events. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DeliveryEvent, HeraldEmitter } from '../core/events.ts';
import type { Ingest } from '../core/ingest.ts';
import type { LiveFrames } from '../core/ports-realtime.ts';
import type { ProviderStatus } from '../core/provider-route.ts';

export class Metrics {
  private readonly registry = new Registry();

  constructor(
    events: HeraldEmitter,
    ingest: Ingest,
    routes?: ReadonlyMap<string, { status(): ProviderStatus[] }>,
    live?: Pick<LiveFrames, 'received'>,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_process_' });
    const accepted = new Counter({
      name: 'herald_notifications_accepted_total',
      help: 'Notifications committed, by lane',
      labelNames: ['lane'],
      registers: [this.registry],
    });
    const outcomes = new Counter({
      name: 'herald_delivery_attempts_total',
      help: 'Delivery attempts by lane, channel and outcome (sent, retry, failed, dead)',
      labelNames: ['lane', 'channel', 'outcome'],
      registers: [this.registry],
    });
    const deferrals = new Counter({
      name: 'herald_delivery_deferrals_total',
      help: 'Deliveries handed back unsent because their destination (a webhook or chat origin) was busy; not attempts',
      labelNames: ['lane', 'channel'],
      registers: [this.registry],
    });
    const latency = new Histogram({
      name: 'herald_delivery_latency_seconds',
      help: 'From acceptance (or sendAt) to a recorded successful delivery',
      labelNames: ['lane', 'channel'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    const reclaimed = new Counter({
      name: 'herald_leases_reclaimed_total',
      help: 'Deliveries whose lease expired (their worker died or stalled) and went back to the queue',
      registers: [this.registry],
    });
    new Counter({
      name: 'herald_realtime_frames_received_total',
      help: 'Live frames this process received from other processes for its sockets',
      registers: [this.registry],
      collect() {
        this.reset();
        if (live?.received) this.inc(live.received);
      },
    });
    new Gauge({
      name: 'herald_ingest_pending',
      help: 'Requests waiting for their group commit',
      registers: [this.registry],
      collect() {
        this.set(ingest.pending);
      },
    });
    const commitSize = new Histogram({
      name: 'herald_ingest_commit_notifications',
      help: 'Notifications per group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [this.registry],
    });
    const commitTime = new Histogram({
      name: 'herald_ingest_commit_seconds',
      help: 'Time the store took for one group commit',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    const sockets = new Gauge({
      name: 'herald_realtime_sockets',
      help: 'Open WebSockets on this process',
      registers: [this.registry],
    });
    const opened = new Counter({
      name: 'herald_realtime_connections_total',
      help: 'WebSockets accepted',
      registers: [this.registry],
    });
    const closed = new Counter({
      name: 'herald_realtime_disconnects_total',
      help: 'WebSockets closed, by close code (4408: slow consumer, 4401: token expired, 1012: restart, 1006: dropped)',
      labelNames: ['code'],
      registers: [this.registry],
    });
    const refused = new Counter({
      name: 'herald_realtime_refused_total',
      help: 'Upgrades to /v1/realtime refused, by HTTP status',
      labelNames: ['status'],
      registers: [this.registry],
    });
    const providerAttempts = new Counter({
      name: 'herald_provider_attempts_total',
      help: 'What each provider did with the deliveries routed to it: sent, transient, permanent, skipped, or passed over (open: its breaker is open; paced: over its rate limit)',
      labelNames: ['provider', 'channel', 'outcome'],
      registers: [this.registry],
    });
    events.on('provider:attempt', (a) =>
      providerAttempts.inc({ provider: a.provider, channel: a.channel, outcome: a.outcome }),
    );
    const BREAKER_STATE = { closed: 0, half_open: 1, open: 2 } as const;
    new Gauge({
      name: 'herald_provider_circuit_state',
      help: "A provider's circuit breaker in this process: 0 closed, 1 half-open (next send probes), 2 open",
      labelNames: ['provider', 'channel'],
      registers: [this.registry],
      collect() {
        for (const route of routes?.values() ?? []) {
          for (const p of route.status()) {
            if (p.circuit) this.set({ provider: p.name, channel: p.channel }, BREAKER_STATE[p.circuit.state]);
          }
        }
      },
    });
    events.on('realtime:opened', () => {
      opened.inc();
      sockets.inc();
    });
    events.on('realtime:closed', (e) => {
      closed.inc({ code: String(e.code) });
      sockets.dec();
    });
    events.on('realtime:refused', (e) => refused.inc({ status: String(e.status) }));
    events.on('notification:accepted', (e) => accepted.inc({ lane: e.lane }));
    events.on('ingest:commit', (e) => {
      commitSize.observe(e.notifications);
      commitTime.observe(e.ms / 1000);
    });
    const count = (outcome: string) => (e: DeliveryEvent) =>
      outcomes.inc({ lane: e.lane, channel: e.channel, outcome });
    events.on('delivery:sent', (e) => {
      count('sent')(e);
      latency.observe({ lane: e.lane, channel: e.channel }, e.latencyMs / 1000);
    });
    events.on('delivery:retry', count('retry'));
    events.on('delivery:failed', count('failed'));
    events.on('delivery:dead', count('dead'));
    events.on('delivery:skipped', count('skipped'));
    events.on('delivery:deferred', (e) => deferrals.inc({ lane: e.lane, channel: e.channel }));
    events.on('delivery:reclaimed', (e) => reclaimed.inc(e.count));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
