/**
 * wrk (Debian's package, C) as the ingest load generator: it needs ~5–10× less CPU per request
 * than autocannon, which on a 2-core machine is CPU taken from Herald and PostgreSQL. A Lua script
 * (below) makes every request body unique, keeps the id of every 202 and counts what it sent and
 * what was answered; at the end wrk prints one JSON line with those, the latency percentiles and
 * its own CPU time (from /proc/self/stat), and writes the ids to a file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One run of an ingest load generator (wrk here; the ingest bench gives autocannon's the same shape). */
export interface LoadGeneratorRun {
  seconds: number;
  /** Ids answered 202. */
  ids: string[];
  /** Requests written but not answered when the run stopped. */
  unanswered: number;
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  p50: number;
  p99: number;
  max: number;
  /** The generator's own CPU time, ms. */
  cpuMs: number;
}

export function wrkAvailable(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/** Lua for wrk: {{BODY}} is the JSON body with <id> where the unique part goes. */
const SCRIPT = String.raw`
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  ids, sent, answered = {}, 0, 0
  prefix = args[1] .. "-" .. tid .. "-"
  -- The request is built by hand: only the id (and so the length) changes between requests.
  local template = [==[{{BODY}}]==]
  local at = string.find(template, "<id>", 1, true)
  before, after = string.sub(template, 1, at - 1) .. prefix, string.sub(template, at + 4)
  head = "POST /v1/notifications HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
    "\r\nAuthorization: " .. args[2] .. "\r\nContent-Type: application/json\r\nContent-Length: "
end
function request()
  sent = sent + 1
  local body = before .. sent .. after
  return head .. #body .. "\r\n\r\n" .. body
end
function response(status, hdrs, body)
  answered = answered + 1
  if status == 202 then
    local id = string.match(body, '"id":"([%x%-]+)"')
    if id then ids[#ids + 1] = id end
  end
end
function done(summary, latency, requests)
  local all, sentAll, answeredAll = {}, 0, 0
  for _, t in ipairs(threads) do
    for _, id in ipairs(t:get("ids")) do all[#all + 1] = id end
    sentAll = sentAll + t:get("sent")
    answeredAll = answeredAll + t:get("answered")
  end
  local f = io.open(os.getenv("WRK_IDS_FILE"), "w")
  f:write(table.concat(all, "\n"))
  f:close()
  local stat = io.open("/proc/self/stat"):read("*a")
  local utime, stime = string.match(stat, "^%d+ %b() %S+" .. string.rep(" %S+", 10) .. " (%d+) (%d+)")
  local e = summary.errors
  io.write(string.format(
    '\nWRK_RESULT {"seconds":%f,"sent":%d,"answered":%d,"non2xx":%d,"errors":%d,"p50":%f,"p99":%f,"max":%f,"ticks":%d}\n',
    summary.duration / 1e6, sentAll, answeredAll, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, utime + stime))
end
`;

/** Clock ticks per second of /proc/self/stat's utime and stime (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/**
 * Posts `body` (JSON with `<id>` where a unique id goes) to `url`/v1/notifications for `seconds`
 * on `connections` kept-alive connections, from one wrk thread.
 */
export async function runWrk(options: {
  url: string;
  authorization: string;
  body: string;
  connections: number;
  seconds: number;
  /** Makes ids unique across runs against one store. */
  runId: string;
}): Promise<LoadGeneratorRun> {
  const dir = await mkdtemp(join(tmpdir(), 'herald-wrk-'));
  try {
    const script = join(dir, 'ingest.lua');
    const idsFile = join(dir, 'ids');
    await writeFile(script, SCRIPT.replace('{{BODY}}', options.body));
    const child = spawn(
      'wrk',
      [
        '-t1',
        `-c${options.connections}`,
        `-d${options.seconds}s`,
        '--timeout',
        '30s',
        '-s',
        script,
        options.url,
        '--',
        options.runId,
        options.authorization,
      ],
      { env: { ...process.env, WRK_IDS_FILE: idsFile }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const line = /^WRK_RESULT (.*)$/m.exec(out)?.[1];
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}):\n${out}`);
    const { sent, answered, ticks, ...r } = JSON.parse(line) as Omit<
      LoadGeneratorRun,
      'ids' | 'unanswered' | 'cpuMs'
    > & {
      sent: number;
      answered: number;
      ticks: number;
    };
    const text = await readFile(idsFile, 'utf8');
    return { ...r, ids: text ? text.split('\n') : [], unanswered: sent - answered, cpuMs: (ticks * 1000) / USER_HZ };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
