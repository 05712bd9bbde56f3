/**
 * Bad requests beyond the fields of a notification: JSON syntax, byte encodings, content types,
 * body size, credentials, the Idempotency-Key header, and bad input to the user, token, inbox and
 * notification routes. Nothing may be stored by any of them.
 */

import { type BadInputCase, badInputSuite, TABLE_MAX_BODY_BYTES } from './support/bad-input.ts';
import { TEST_API_KEY } from './support/herald.ts';
import { bearer, JSON_TYPE, nowSeconds, PRODUCER, signJwt, userToken } from './support/http.ts';

const BASE = { to: ['alice'], category: 'comment.reply', title: 'New reply' };
const BASE_TEXT = JSON.stringify(BASE);

const V = { status: 400, code: 'HERALD_ERR_VALIDATION' } as const;
const JSON_BAD = { status: 400, code: 'HERALD_ERR_MALFORMED_JSON' } as const;
const ENC = { status: 400, code: 'HERALD_ERR_INVALID_ENCODING' } as const;
const UNAUTH = { status: 401, code: 'HERALD_ERR_UNAUTHORIZED' } as const;
const FORBIDDEN = { status: 403, code: 'HERALD_ERR_FORBIDDEN' } as const;
const MEDIA = { status: 415, code: 'HERALD_ERR_UNSUPPORTED_MEDIA_TYPE' } as const;
const NOT_FOUND = { status: 404, code: 'HERALD_ERR_NOT_FOUND' } as const;

/** BASE_TEXT with its title's bytes replaced by `bytes` (inside the JSON string). */
function titleBytes(...bytes: number[]): Buffer {
  const [head, tail] = BASE_TEXT.split('New reply') as [string, string];
  return Buffer.concat([Buffer.from(head), Buffer.from(bytes), Buffer.from(tail)]);
}

const ALICE = userToken('alice');
const asAlice = { ...bearer(ALICE), ...JSON_TYPE };
const UNKNOWN_ID = '01936f8e-0000-7000-8000-000000000000';

const cases: BadInputCase[] = [
  // JSON syntax
  { name: 'truncated JSON', ...JSON_BAD, raw: BASE_TEXT.slice(0, 20) },
  { name: 'trailing comma', ...JSON_BAD, raw: '{"to":["alice"],"category":"comment.reply",}' },
  { name: 'single quotes', ...JSON_BAD, raw: "{'to':['alice'],'category':'comment.reply'}" },
  { name: 'unquoted keys', ...JSON_BAD, raw: '{to:["alice"],category:"comment.reply"}' },
  { name: 'NaN literal', ...JSON_BAD, raw: '{"to":["alice"],"category":"a","data":{"x":NaN}}' },
  { name: 'two JSON documents', ...JSON_BAD, raw: `${BASE_TEXT}${BASE_TEXT}` },
  { name: 'raw control character in a string', ...JSON_BAD, raw: BASE_TEXT.replace('New reply', 'New\u0001reply') },
  // bytes that are not UTF-8
  { name: 'invalid UTF-8 byte 0xff', ...ENC, field: 'UTF-8', raw: titleBytes(0x4e, 0xff, 0x65) },
  { name: 'truncated UTF-8 sequence', ...ENC, field: 'UTF-8', raw: titleBytes(0xe2, 0x82) },
  { name: 'overlong UTF-8 encoding of /', ...ENC, field: 'UTF-8', raw: titleBytes(0xc0, 0xaf) },
  { name: 'UTF-8 encoded surrogate (CESU)', ...ENC, field: 'UTF-8', raw: titleBytes(0xed, 0xa0, 0x80) },
  { name: 'Latin-1 body', ...ENC, field: 'UTF-8', raw: titleBytes(0x63, 0x61, 0x66, 0xe9) },
  // content type and size
  {
    name: `body over HERALD_MAX_BODY_BYTES (${TABLE_MAX_BODY_BYTES})`,
    status: 413,
    code: 'HERALD_ERR_BODY_TOO_LARGE',
    body: { ...BASE, body: 'x'.repeat(100_000) },
  },
  { name: 'text/plain body', ...MEDIA, raw: BASE_TEXT, headers: { ...PRODUCER, 'content-type': 'text/plain' } },
  {
    name: 'form-encoded body',
    ...MEDIA,
    raw: 'to=alice&category=comment.reply',
    headers: { ...PRODUCER, 'content-type': 'application/x-www-form-urlencoded' },
  },
  {
    name: 'JSON declared as latin1',
    ...MEDIA,
    raw: BASE_TEXT,
    headers: { ...PRODUCER, 'content-type': 'application/json; charset=latin1' },
  },
  { name: 'XML body', ...MEDIA, raw: '<to>alice</to>', headers: { ...PRODUCER, 'content-type': 'application/xml' } },
  { name: 'body without a content type', ...MEDIA, raw: Buffer.from(BASE_TEXT), headers: { ...PRODUCER } },
  // credentials
  { name: 'no Authorization', ...UNAUTH, body: BASE, headers: { ...JSON_TYPE } },
  { name: 'wrong API key', ...UNAUTH, body: BASE, headers: { ...bearer('not-the-key-0123456789'), ...JSON_TYPE } },
  { name: '"Bearer" with nothing', ...UNAUTH, body: BASE, headers: { authorization: 'Bearer', ...JSON_TYPE } },
  { name: '"Bearer " and a blank', ...UNAUTH, body: BASE, headers: { authorization: 'Bearer  ', ...JSON_TYPE } },
  { name: 'Basic scheme', ...UNAUTH, body: BASE, headers: { authorization: `Basic ${TEST_API_KEY}`, ...JSON_TYPE } },
  { name: 'key without a scheme', ...UNAUTH, body: BASE, headers: { authorization: TEST_API_KEY, ...JSON_TYPE } },
  {
    name: 'key with a suffix',
    ...UNAUTH,
    body: BASE,
    headers: { ...bearer(`${TEST_API_KEY}x`), ...JSON_TYPE },
  },
  { name: 'user token on POST /v1/notifications', ...UNAUTH, body: BASE, headers: asAlice },
  {
    name: 'user token on GET a notification',
    ...UNAUTH,
    method: 'GET',
    path: `/v1/notifications/${UNKNOWN_ID}`,
    headers: bearer(ALICE),
  },
  { name: 'user token issuing tokens', ...UNAUTH, path: '/v1/users/alice/tokens', body: {}, headers: asAlice },
  {
    name: 'user token on PUT its own profile',
    ...UNAUTH,
    method: 'PUT',
    path: '/v1/users/alice',
    body: {},
    headers: asAlice,
  },
  {
    name: 'user token listing dead letters',
    ...UNAUTH,
    method: 'GET',
    path: '/v1/dead-letters',
    headers: bearer(ALICE),
  },
  {
    name: 'expired user token on its inbox',
    ...UNAUTH,
    method: 'GET',
    path: '/v1/users/alice/inbox',
    headers: bearer(signJwt({ sub: 'alice', exp: nowSeconds() - 60 })),
  },
  { name: 'no Authorization on an inbox', ...UNAUTH, method: 'GET', path: '/v1/users/alice/inbox', headers: {} },
  {
    name: "user token on another user's inbox",
    ...FORBIDDEN,
    method: 'GET',
    path: '/v1/users/bob/inbox',
    headers: bearer(ALICE),
  },
  {
    name: "user token on another user's profile",
    ...FORBIDDEN,
    method: 'GET',
    path: '/v1/users/bob',
    headers: bearer(ALICE),
  },
  {
    name: "user token marking another user's inbox read",
    ...FORBIDDEN,
    path: '/v1/users/bob/inbox/read',
    body: { all: true },
    headers: asAlice,
  },
  // Idempotency-Key
  {
    name: 'Idempotency-Key of 256 characters',
    ...V,
    field: 'Idempotency-Key',
    body: BASE,
    extraHeaders: { 'idempotency-key': 'k'.repeat(256) },
  },
  {
    name: 'Idempotency-Key with spaces',
    ...V,
    field: 'Idempotency-Key',
    body: BASE,
    extraHeaders: { 'idempotency-key': 'order 42' },
  },
  {
    name: 'Idempotency-Key empty',
    ...V,
    field: 'Idempotency-Key',
    body: BASE,
    extraHeaders: { 'idempotency-key': '' },
  },
  {
    name: 'Idempotency-Key not ASCII',
    ...V,
    field: 'Idempotency-Key',
    body: BASE,
    extraHeaders: { 'idempotency-key': 'café' },
  },
  // PUT /v1/users/{id}
  {
    name: 'user: bad email',
    ...V,
    field: 'email',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { email: 'alice-at-example' },
  },
  {
    name: 'user: email is a number',
    ...V,
    field: 'email',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { email: 42 },
  },
  {
    name: 'user: phone not E.164',
    ...V,
    field: 'phone',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { phone: '555-0100' },
  },
  {
    name: 'user: unknown time zone',
    ...V,
    field: 'timezone',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { timezone: 'Mars/Olympus_Mons' },
  },
  {
    name: 'user: ftp webhookUrl',
    ...V,
    field: 'webhookUrl',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { webhookUrl: 'ftp://example.com/hook' },
  },
  {
    name: 'user: webhookUrl not a URL',
    ...V,
    field: 'webhookUrl',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { webhookUrl: 'example.com/hook' },
  },
  {
    name: 'user: chatWebhookUrl not a URL',
    ...V,
    field: 'chatWebhookUrl',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { chatWebhookUrl: 'hooks.example.com/services/x' },
  },
  {
    name: 'user: bad locale',
    ...V,
    field: 'locale',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { locale: 'English please' },
  },
  {
    name: 'user: unknown field',
    ...V,
    field: 'nickname',
    method: 'PUT',
    path: '/v1/users/alice',
    body: { nickname: 'al' },
  },
  { name: 'user: body is an array', ...V, field: '(body)', method: 'PUT', path: '/v1/users/alice', body: [] },
  { name: 'user id with a slash', ...V, field: 'userId', method: 'PUT', path: '/v1/users/team%2Falice', body: {} },
  { name: 'user id with a space', ...V, field: 'userId', method: 'PUT', path: '/v1/users/alice%20smith', body: {} },
  {
    name: 'user id of 201 characters',
    ...V,
    field: 'userId',
    method: 'PUT',
    path: `/v1/users/${'u'.repeat(201)}`,
    body: {},
  },
  {
    name: 'user id of 600 characters',
    ...V,
    field: 'url',
    method: 'PUT',
    path: `/v1/users/${'u'.repeat(600)}`,
    body: {},
  },
  {
    name: 'user id with broken percent-encoding',
    ...V,
    field: 'url',
    method: 'PUT',
    path: '/v1/users/alice%E0%A4%A',
    body: {},
  },
  // POST /v1/users/{id}/tokens
  {
    name: 'tokens: ttlSeconds as a string',
    ...V,
    field: 'ttlSeconds',
    path: '/v1/users/alice/tokens',
    body: { ttlSeconds: '3600' },
  },
  {
    name: 'tokens: ttlSeconds too short',
    ...V,
    field: 'ttlSeconds',
    path: '/v1/users/alice/tokens',
    body: { ttlSeconds: 10 },
  },
  {
    name: 'tokens: ttlSeconds over 30 days',
    ...V,
    field: 'ttlSeconds',
    path: '/v1/users/alice/tokens',
    body: { ttlSeconds: 31 * 86_400 },
  },
  {
    name: 'tokens: ttlSeconds fractional',
    ...V,
    field: 'ttlSeconds',
    path: '/v1/users/alice/tokens',
    body: { ttlSeconds: 90.5 },
  },
  { name: 'tokens: unknown field', ...V, field: 'scope', path: '/v1/users/alice/tokens', body: { scope: 'admin' } },
  { name: 'tokens: user id with a space', ...V, field: 'userId', path: '/v1/users/a%20b/tokens', body: {} },
  // POST /v1/users/{id}/inbox/read
  { name: 'read: empty object', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: {} },
  { name: 'read: no body', ...V, field: '(body)', path: '/v1/users/alice/inbox/read' },
  { name: 'read: empty seqs', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: { seqs: [] } },
  { name: 'read: seq 0', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: { seqs: [0] } },
  { name: 'read: seqs as a string', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: { seqs: '1' } },
  { name: 'read: negative upToSeq', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: { upToSeq: -1 } },
  { name: 'read: all false', ...V, field: '(body)', path: '/v1/users/alice/inbox/read', body: { all: false } },
  {
    name: 'read: two selections',
    ...V,
    field: '(body)',
    path: '/v1/users/alice/inbox/read',
    body: { seqs: [1], all: true },
  },
  // GET /v1/users/{id}/inbox query
  { name: 'inbox: limit=0', ...V, field: 'limit', method: 'GET', path: '/v1/users/alice/inbox?limit=0' },
  { name: 'inbox: limit=201', ...V, field: 'limit', method: 'GET', path: '/v1/users/alice/inbox?limit=201' },
  { name: 'inbox: limit=ten', ...V, field: 'limit', method: 'GET', path: '/v1/users/alice/inbox?limit=ten' },
  { name: 'inbox: before=-5', ...V, field: 'before', method: 'GET', path: '/v1/users/alice/inbox?before=-5' },
  { name: 'inbox: before=1.5', ...V, field: 'before', method: 'GET', path: '/v1/users/alice/inbox?before=1.5' },
  { name: 'inbox: unread=yes', ...V, field: 'unread', method: 'GET', path: '/v1/users/alice/inbox?unread=yes' },
  { name: 'inbox: unknown parameter', ...V, field: 'sort', method: 'GET', path: '/v1/users/alice/inbox?sort=asc' },
  // GET /v1/notifications/{id}
  { name: 'notification: id not a uuid', ...NOT_FOUND, method: 'GET', path: '/v1/notifications/not-a-uuid' },
  { name: 'notification: unknown id', ...NOT_FOUND, method: 'GET', path: `/v1/notifications/${UNKNOWN_ID}` },
  {
    name: 'notification: limit=0',
    ...V,
    field: 'limit',
    method: 'GET',
    path: `/v1/notifications/${UNKNOWN_ID}?limit=0`,
  },
  {
    name: 'notification: unknown parameter',
    ...V,
    field: 'expand',
    method: 'GET',
    path: `/v1/notifications/${UNKNOWN_ID}?expand=all`,
  },
  { name: 'dead letters: limit=0', ...V, field: 'limit', method: 'GET', path: '/v1/dead-letters?limit=0' },
  // routes
  { name: 'unknown route', ...NOT_FOUND, path: '/v1/notification', body: BASE },
  {
    name: 'known path, unknown method',
    status: 405,
    code: 'HERALD_ERR_METHOD_NOT_ALLOWED',
    method: 'DELETE',
    path: '/v1/notifications',
  },
  {
    name: 'known path with an id, unknown method',
    status: 405,
    code: 'HERALD_ERR_METHOD_NOT_ALLOWED',
    method: 'PATCH',
    path: `/v1/notifications/${UNKNOWN_ID}`,
    body: BASE,
  },
];

badInputSuite('bad requests', cases, { control: { body: BASE, extraHeaders: { 'idempotency-key': 'control-1' } } });
