/**
 * Bad input, field by field, against POST /v1/notifications: wrong types, missing and empty values,
 * limits, unknown names, malformed dates, and strings that cannot be stored (NUL, unpaired surrogate).
 * Each row is a near miss of BASE; the control at the end shows BASE itself is accepted.
 *
 * Strings that cannot be stored are answered 400 HERALD_ERR_VALIDATION naming the field (bytes that
 * are not UTF-8 at all are HERALD_ERR_INVALID_ENCODING: see api-bad-input-requests).
 */
import { type BadInputCase, badInputSuite } from './support/bad-input.ts';

const BASE = { to: ['alice', 'bob'], category: 'comment.reply' } as const;

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** BASE with some fields replaced (`undefined` removes one). */
function withFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...BASE, ...fields };
  for (const [k, v] of Object.entries(fields)) if (v === undefined) delete out[k];
  return out;
}

/** BASE as JSON text with `extra` (JSON text, escapes kept as written) spliced in before the end. */
const rawWith = (extra: string) => `${JSON.stringify(BASE).slice(0, -1)},${extra}}`;

const V = { status: 400, code: 'HERALD_ERR_VALIDATION' } as const;

/** 10,001 distinct ids short enough (base 36, ≤ 3 characters) that the body stays under the 64 KiB limit. */
const TOO_MANY = Array.from({ length: 10_001 }, (_, i) => i.toString(36));

function nested(depth: number): unknown {
  let v: unknown = 'deep';
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}

const cases: BadInputCase[] = [
  // to
  { name: 'to missing', ...V, field: 'to', body: withFields({ to: undefined }) },
  { name: 'to is a string', ...V, field: 'to', body: withFields({ to: 'alice' }) },
  { name: 'to is null', ...V, field: 'to', body: withFields({ to: null }) },
  { name: 'to is a number', ...V, field: 'to', body: withFields({ to: 7 }) },
  { name: 'to is empty', ...V, field: 'to', body: withFields({ to: [] }) },
  { name: 'to holds a number', ...V, field: 'to', body: withFields({ to: [42] }) },
  { name: 'to holds null', ...V, field: 'to', body: withFields({ to: ['alice', null] }) },
  { name: 'to holds an empty id', ...V, field: 'to', body: withFields({ to: [''] }) },
  { name: 'to holds an id with a space', ...V, field: 'to', body: withFields({ to: ['alice smith'] }) },
  { name: 'to holds an id with a slash', ...V, field: 'to', body: withFields({ to: ['team/alice'] }) },
  { name: 'to holds an id of 201 characters', ...V, field: 'to', body: withFields({ to: ['u'.repeat(201)] }) },
  { name: 'to holds an id with a NUL', ...V, field: 'to', raw: rawWith('"to":["ali\\u0000ce"]') },
  { name: 'to has 10,001 recipients', ...V, field: 'to', body: withFields({ to: TOO_MANY }) },
  { name: 'to is an object without topic', ...V, field: 'to', body: withFields({ to: { users: ['alice'] } }) },
  // category
  { name: 'category missing', ...V, field: 'category', body: withFields({ category: undefined }) },
  { name: 'category is a number', ...V, field: 'category', body: withFields({ category: 42 }) },
  { name: 'category is null', ...V, field: 'category', body: withFields({ category: null }) },
  { name: 'category is empty', ...V, field: 'category', body: withFields({ category: '' }) },
  { name: 'category has an empty segment', ...V, field: 'category', body: withFields({ category: 'comment..reply' }) },
  { name: 'category starts with a dot', ...V, field: 'category', body: withFields({ category: '.comment' }) },
  { name: 'category has a space', ...V, field: 'category', body: withFields({ category: 'comment reply' }) },
  { name: 'category has a slash', ...V, field: 'category', body: withFields({ category: 'comment/reply' }) },
  { name: 'category of 121 characters', ...V, field: 'category', body: withFields({ category: 'c'.repeat(121) }) },
  // priority
  { name: 'priority unknown', ...V, field: 'priority', body: withFields({ priority: 'urgent' }) },
  { name: 'priority in capitals', ...V, field: 'priority', body: withFields({ priority: 'NORMAL' }) },
  { name: 'priority is a number', ...V, field: 'priority', body: withFields({ priority: 1 }) },
  { name: 'priority is null', ...V, field: 'priority', body: withFields({ priority: null }) },
  // channels
  { name: 'channels is a string', ...V, field: 'channels', body: withFields({ channels: 'in_app' }) },
  { name: 'channels is empty', ...V, field: 'channels', body: withFields({ channels: [] }) },
  { name: 'channels holds an unknown channel', ...V, field: 'channels', body: withFields({ channels: ['pigeon'] }) },
  { name: 'channels repeats a channel', ...V, field: 'channels', body: withFields({ channels: ['in_app', 'in_app'] }) },
  { name: 'channels holds a number', ...V, field: 'channels', body: withFields({ channels: [1] }) },
  // title and body
  { name: 'title is a number', ...V, field: 'title', body: withFields({ title: 42 }) },
  { name: 'title is an object', ...V, field: 'title', body: withFields({ title: { en: 'Hi' } }) },
  { name: 'title of 1,001 characters', ...V, field: 'title', body: withFields({ title: 't'.repeat(1_001) }) },
  { name: 'title holds a lone surrogate', ...V, field: 'title', raw: rawWith('"title":"Hi \\ud800 there"') },
  { name: 'title holds a lone low surrogate', ...V, field: 'title', raw: rawWith('"title":"\\udc00"') },
  { name: 'title holds a NUL', ...V, field: 'title', raw: rawWith('"title":"Hi\\u0000"') },
  { name: 'body field is an array', ...V, field: 'body', body: withFields({ body: ['Bob replied'] }) },
  { name: 'body field is a boolean', ...V, field: 'body', body: withFields({ body: true }) },
  { name: 'body field of 20,001 characters', ...V, field: 'body', body: withFields({ body: 'b'.repeat(20_001) }) },
  { name: 'body field holds a NUL', ...V, field: 'body', raw: rawWith('"body":"a\\u0000b"') },
  // data
  { name: 'data is a string', ...V, field: 'data', body: withFields({ data: '{"postId":42}' }) },
  { name: 'data is an array', ...V, field: 'data', body: withFields({ data: [1, 2] }) },
  { name: 'data is a number', ...V, field: 'data', body: withFields({ data: 42 }) },
  { name: 'data over 32 KiB', ...V, field: 'data', body: withFields({ data: { blob: 'd'.repeat(32_800) } }) },
  { name: 'data nests 40 levels deep', ...V, field: 'data', body: withFields({ data: nested(40) }) },
  {
    name: 'data nests 25,000 levels deep',
    ...V,
    field: '(body)',
    raw: rawWith(`"data":{"k":${'['.repeat(25_000)}${']'.repeat(25_000)}}`),
  },
  {
    name: 'brackets inside strings do not count as nesting',
    ...V,
    field: 'subject',
    raw: rawWith(`"subject":"${'['.repeat(1_000)}"`),
  },
  { name: 'data number overflows to Infinity', ...V, field: 'data', raw: rawWith('"data":{"n":1e400}') },
  { name: 'data holds a NUL in a value', ...V, field: 'data', raw: rawWith('"data":{"note":"a\\u0000b"}') },
  { name: 'data holds a NUL in a key', ...V, field: 'data', raw: rawWith('"data":{"a\\u0000b":1}') },
  {
    name: 'data holds a lone surrogate deep down',
    ...V,
    field: 'data',
    raw: rawWith('"data":{"list":[{"s":"\\ud83d"}]}'),
  },
  // sendAt
  { name: 'sendAt without a time zone', ...V, field: 'sendAt', body: withFields({ sendAt: '2026-12-01T09:00:00' }) },
  { name: 'sendAt is not a date', ...V, field: 'sendAt', body: withFields({ sendAt: 'tomorrow morning' }) },
  { name: 'sendAt is a date only', ...V, field: 'sendAt', body: withFields({ sendAt: '2026-12-01' }) },
  { name: 'sendAt in year 99999', ...V, field: 'sendAt', body: withFields({ sendAt: '99999-01-01T00:00:00Z' }) },
  {
    name: 'sendAt in year +099999',
    ...V,
    field: 'sendAt',
    body: withFields({ sendAt: '+099999-01-01T00:00:00Z' }),
  },
  { name: 'sendAt on February 30', ...V, field: 'sendAt', body: withFields({ sendAt: '2027-02-30T09:00:00Z' }) },
  { name: 'sendAt at hour 25', ...V, field: 'sendAt', body: withFields({ sendAt: '2026-12-01T25:00:00Z' }) },
  {
    name: 'sendAt more than 366 days ahead',
    ...V,
    field: 'sendAt',
    body: withFields({ sendAt: iso(Date.now() + 400 * DAY) }),
  },
  { name: 'sendAt as epoch milliseconds', ...V, field: 'sendAt', body: withFields({ sendAt: Date.now() + DAY }) },
  // groupKey, unknown fields, the body as a whole
  { name: 'groupKey is a number', ...V, field: 'groupKey', body: withFields({ groupKey: 42 }) },
  { name: 'groupKey of 301 characters', ...V, field: 'groupKey', body: withFields({ groupKey: 'g'.repeat(301) }) },
  { name: 'unknown field', ...V, field: 'subject', body: withFields({ subject: 'Hi' }) },
  { name: 'unknown field __proto__', ...V, field: '__proto__', raw: rawWith('"__proto__":{"admin":true}') },
  {
    name: '__proto__ deep inside data',
    ...V,
    field: 'data.list[1].__proto__',
    raw: rawWith('"data":{"list":[1,{"__proto__":{"admin":true}}]}'),
  },
  {
    name: '__proto__ spelt with a unicode escape',
    ...V,
    field: 'data.__proto__',
    raw: rawWith('"data":{"\\u005f_proto__":{"admin":true}}'),
  },
  { name: 'body is an array', ...V, field: '(body)', body: [BASE] },
  { name: 'body is null', ...V, field: '(body)', raw: 'null' },
  { name: 'body is a number', ...V, field: '(body)', raw: '42' },
  { name: 'body is a string', ...V, field: '(body)', raw: '"hello"' },
  { name: 'body is empty (content-type JSON)', ...V, field: '(body)', raw: '' },
  { name: 'body is an empty object', ...V, field: 'to', body: {} },
];

badInputSuite('POST /v1/notifications: bad fields', cases, { control: { body: BASE } });
