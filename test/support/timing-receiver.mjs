// A webhook receiver in its own process, for tests that measure when requests arrive: the test's
// own event loop (which runs Herald too) cannot delay or bunch the timestamps. Answers 200 to every
// request; on the parent's message "dump" it sends back [{at, id}] (at: ms, when the request's
// headers arrived).
import { createServer } from 'node:http';

const seen = [];
const server = createServer((req, res) => {
  seen.push({ at: performance.timeOrigin + performance.now(), id: String(req.headers['webhook-id'] ?? '') });
  req.resume();
  req.on('end', () => res.end('ok'));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m === 'dump') process.send({ seen });
  if (m === 'stop') server.close(() => process.exit(0));
});
