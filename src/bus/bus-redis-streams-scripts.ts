/** The Lua scripts of the Redis Streams bus (bus-redis-streams.ts), each atomic on one lane's two keys. */

import { createHash } from 'node:crypto';
import type { RedisClient } from '../redis-connection.ts';

/**
 * KEYS: ready, delayed. ARGV: how many due ids follow, the due ids, then score/id pairs to delay.
 * Returns the stream's length.
 */
const PUBLISH = `
local n = tonumber(ARGV[1])
for i = 2, n + 1 do redis.call('XADD', KEYS[1], '*', 'id', ARGV[i]) end
if #ARGV > n + 1 then redis.call('ZADD', KEYS[2], unpack(ARGV, n + 2)) end
return redis.call('XLEN', KEYS[1])`;

/**
 * KEYS: ready, delayed. ARGV: now (ms), at most how many to move. Returns what it moved, the
 * earliest score left ('' when none), and the stream's length.
 */
const PROMOTE = `
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('XADD', KEYS[1], '*', 'id', id) end
if #due > 0 then redis.call('ZREM', KEYS[2], unpack(due)) end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {#due, first[2] or '', redis.call('XLEN', KEYS[1])}`;

/**
 * KEYS: ready. ARGV: group, entry ids. Acks and deletes together, so that an entry is never left in
 * the stream acked (it would count as waiting forever). Returns the stream's length.
 */
const ACK = `
pcall(redis.call, 'XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return redis.call('XLEN', KEYS[1])`;

/** KEYS: ready. ARGV: group. Entries in the stream not handed to any consumer. */
const WAITING = `
local len = redis.call('XLEN', KEYS[1])
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok then return len - summary[1] end
return len`;

/** KEYS: ready. ARGV: group. The group's last-delivered id; '0-0' when the group (or stream) is missing. */
const LAST_DELIVERED = `
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return '0-0' end
for _, g in ipairs(groups) do
  for i = 1, #g, 2 do
    if g[i] == 'name' and g[i + 1] == ARGV[1] then
      for j = 1, #g, 2 do if g[j] == 'last-delivered-id' then return g[j + 1] end end
    end
  end
end
return '0-0'`;

export interface Script {
  source: string;
  sha: string;
}
function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}
export const SCRIPTS = {
  publish: script(PUBLISH),
  promote: script(PROMOTE),
  ack: script(ACK),
  waiting: script(WAITING),
  lastDelivered: script(LAST_DELIVERED),
};

/** EVALSHA, falling back to EVAL when the server does not have the script (new or restarted). */
export async function runScript(
  client: RedisClient,
  s: Script,
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
    return client.eval(s.source, keys.length, ...keys, ...args);
  }
}
