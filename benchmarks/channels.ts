/**
 * channels: emails/s through a local SMTP server and pushes/s through a local Web Push service.
 *
 * One Herald (every role) is configured with HERALD_SMTP_URL pointing at an SMTP sink in this
 * process (smtp-server with AUTH; accepts and discards; `lib/channel-sinks.ts`) and with VAPID keys,
 * trusting a Web Push service in this process over HTTPS (a lean copy of the test fake that checks
 * every VAPID JWT and decrypts every aes128gcm payload) through NODE_EXTRA_CA_CERTS. N users each
 * get an `email` and one Web Push device. Then two phases, one after the other: M email
 * notifications, then M push notifications, posted as notifications to all N users at once (M ÷ N
 * POSTs of N recipients, so that ingest is not what is measured). Rate = M ÷ (last distinct arrival
 * − first POST); `sink rate` = M ÷ (last − first arrival). CPU per message: Herald's process (and
 * its PostgreSQL backends) and this process (the two sinks and the API client).
 */
import { performance } from 'node:perf_hooks';
import webpush from 'web-push';
import { makeTestCertificate } from '../test/support/tls-cert.ts';
import { forEachLimit, HeraldClient } from './lib/api-client.ts';
import { type ArrivalCounter, startPushSink, startSmtpSink } from './lib/channel-sinks.ts';
import { cpuBetween } from './lib/cpu.ts';
import { startHeraldProcess } from './lib/herald-process.ts';
import type { Scenario } from './lib/scenario.ts';
import { sleep } from './lib/stats.ts';

const SMTP_USER = 'bench';
const SMTP_PASS = 'bench-smtp-pass';
const SUBJECT = 'mailto:bench@herald.example';
const TARGET = { email: 1_000, push: 2_000 };

export const scenario: Scenario = {
  name: 'channels',
  summary: 'emails/s through a local SMTP server and pushes/s through a local Web Push service',
  headline: 'rate',
  columns: [
    { key: 'rate', label: 'msgs/s', better: 'higher' },
    { key: 'target', label: 'target' },
    { key: 'sinkRate', label: 'sink rate' },
    { key: 'delivered', label: 'delivered' },
    { key: 'seconds', label: 'total s', digits: 2 },
    { key: 'heraldCpu', label: 'Herald CPU µs/msg', better: 'lower' },
    { key: 'pgCpu', label: 'PostgreSQL CPU µs/msg' },
    { key: 'sinkCpu', label: 'bench CPU µs/msg' },
    { key: 'xacts', label: 'PostgreSQL xacts/msg', digits: 2 },
    { key: 'connections', label: 'connections' },
    { key: 'duplicates', label: 'duplicates' },
  ],
  async trial(store, o, log) {
    const cert = await makeTestCertificate();
    const vapid = webpush.generateVAPIDKeys();
    const smtp = await startSmtpSink(SMTP_USER, SMTP_PASS);
    const push = await startPushSink({ vapidPublicKey: vapid.publicKey, subject: SUBJECT, tls: cert });
    log(`starting Herald (${store})`);
    const herald = await startHeraldProcess({
      store,
      env: {
        HERALD_SMTP_URL: `smtp://${SMTP_USER}:${SMTP_PASS}@127.0.0.1:${smtp.port}`,
        HERALD_EMAIL_FROM: 'Herald Bench <bench@herald.example>',
        HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
        HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
        HERALD_VAPID_SUBJECT: SUBJECT,
        NODE_EXTRA_CA_CERTS: cert.certFile,
        ...o.env,
      },
      ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
    });
    const client = new HeraldClient(herald.url, 32);
    try {
      const users = Array.from({ length: o.users }, (_, i) => `chan-user-${i}`);
      log(`creating ${users.length} users, each with an email and one Web Push device`);
      await client.putUsers(users, (id) => ({ email: `${id}@bench.example` }));
      await forEachLimit(users, 32, async (id) => {
        const sub = push.subscribe();
        const r = await client.call('POST', `/v1/users/${id}/devices`, { provider: 'webpush', token: sub });
        if (r.status !== 201) throw new Error(`POST devices answered ${r.status}: ${JSON.stringify(r.json)}`);
      });
      const posts = Math.max(1, Math.round(o.count / users.length));
      const total = posts * users.length;
      const rows = [];
      for (const channel of ['email', 'push'] as const) {
        const sink: ArrivalCounter = channel === 'email' ? smtp.arrivals : push.arrivals;
        sink.reset();
        log(`${channel}: ${posts} notifications to ${users.length} users (${total} deliveries)`);
        await sleep(1000);
        const x0 = await herald.transactions();
        const cpu0 = await herald.cpu();
        const bench0 = process.cpuUsage();
        const t0 = performance.now();
        await forEachLimit(
          Array.from({ length: posts }, (_, i) => i),
          4,
          async (i) => {
            await client.send({
              to: users,
              category: `bench.${channel}`,
              channels: [channel],
              title: `Build #${i} finished`,
              body: `Build #${i} of herald passed in 4m12s.\n\nSee the log for details.`,
              data: { build: i },
            });
          },
        );
        log(`${channel}: posted in ${((performance.now() - t0) / 1000).toFixed(2)} s; waiting for the sink`);
        const last = await sink.waitFor(total, Math.max(300_000, total * 10), channel);
        const cpu1 = await herald.cpu();
        const bench = process.cpuUsage(bench0);
        await sleep(1000);
        const x1 = await herald.transactions();
        const seconds = (last - t0) / 1000;
        const rate = Math.round(total / seconds);
        rows.push({
          variant:
            channel === 'email'
              ? `email (SMTP, ${o.env.HERALD_SMTP_MAX_CONNECTIONS ?? 'default'} conns)`
              : 'push (Web Push, 1 device/user)',
          rate,
          target: rate >= TARGET[channel] ? 'yes' : 'no',
          sinkRate: Math.round(total / ((sink.last - sink.first) / 1000)),
          delivered: sink.seen.size,
          seconds,
          heraldCpu: Math.round(((cpu1.herald - cpu0.herald) * 1000) / total),
          pgCpu: store === 'postgres' ? Math.round((cpuBetween(cpu0.backends, cpu1.backends) * 1000) / total) : null,
          sinkCpu: Math.round((bench.user + bench.system) / total),
          xacts: x0 === null || x1 === null ? null : (x1 - x0) / total,
          connections: channel === 'email' ? smtp.connections() : push.connections(),
          duplicates: sink.duplicates,
        });
      }
      if (push.refused.length) throw new Error(`the push service refused requests: ${push.refused.slice(0, 3)}`);
      await herald.stop();
      return { rows };
    } catch (e) {
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      throw e;
    } finally {
      await client.close();
      await herald.cleanup();
      await smtp.close();
      await push.close();
      await cert.remove();
    }
  },
};
