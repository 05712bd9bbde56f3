import { createServer } from 'node:http';
import { Agent, request } from '/work/wt-egress/node_modules/undici/index.js';
import { GuardedHttpClient } from '/work/wt-egress/src/channels/egress-http.ts';
import { EgressPolicy } from '/work/wt-egress/src/channels/egress-policy.ts';

let conns = 0;
const srv = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
srv.on('connection', () => conns++);
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const port = (srv.address() as any).port;
const agent = new Agent({ connections: 128 });
for (let i = 0; i < 20; i++) {
  const r = await request(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x', dispatcher: agent });
  await r.body.dump();
}
console.log('undici request conns', conns);
conns = 0;
const c = new GuardedHttpClient({ policy: new EgressPolicy(['127.0.0.0/8']) });
for (let i = 0; i < 20; i++) await c.post(`http://127.0.0.1:${port}/`, { headers: {}, body: 'x', timeoutMs: 1000 });
console.log('guarded conns', conns);
process.exit(0);
