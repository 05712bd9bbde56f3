/**
 * One-click unsubscribe (RFC 8058, RFC 2369): the target of every email's `List-Unsubscribe` link,
 * `/v1/unsubscribe?token=…`. The token (core/unsubscribe-token.ts) is the only authority: no API key.
 *
 * - `POST` with the body `List-Unsubscribe=One-Click` (application/x-www-form-urlencoded, as mail
 *   clients send it, or multipart/form-data) opts the token's user out of its category on its
 *   channel, merged into their preferences in one statement → `200` and a short HTML page. Repeating
 *   it changes nothing.
 * - `GET` never unsubscribes (mail scanners and link previews fetch links): it shows a small page
 *   whose button sends that POST.
 * - No `token` → `401 HERALD_ERR_UNAUTHORIZED`; a token Herald did not sign → `400
 *   HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN`; a POST without `List-Unsubscribe=One-Click` → `400
 *   HERALD_ERR_VALIDATION`.
 *
 * Pages are self-contained (no scripts, styles inline) and sent with a Content-Security-Policy that
 * allows nothing else, `Referrer-Policy: no-referrer` (the token is in the URL) and no caching.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { HeraldError, validationError } from '../core/errors.ts';
import { parseOrThrow } from '../core/input.ts';
import type { IsRequired } from '../core/preferences.ts';
import type { UnsubscribeSubject, UnsubscribeTokens } from '../core/unsubscribe-token.ts';
import { doc, errorResponses } from './docs.ts';
import { UNSUBSCRIBE_QUERY } from './openapi-shapes-users.ts';
import type { ApiDeps } from './server.ts';

/** What the unsubscribe routes need beside the store. */
export interface UnsubscribeDeps {
  tokens: UnsubscribeTokens;
  /** A required category ignores opt-outs; the page says so (issue 13's category policies). */
  isRequired: IsRequired;
}

/** The form field and value of RFC 8058. */
const FIELD = 'List-Unsubscribe';
const ONE_CLICK = 'One-Click';
/** A one-click body is 26 bytes; a multipart one a few hundred. */
const BODY_LIMIT = 16_384;

const HTML_ANSWER = (description: string) => ({
  description,
  content: { 'text/html': { schema: { type: 'string' } } },
});

const SECURITY = [{ unsubscribeToken: [] }];

export function unsubscribeRoutes(
  app: FastifyInstance,
  { store, decisionContexts }: ApiDeps,
  deps: UnsubscribeDeps,
): void {
  function subjectOf(query: unknown): UnsubscribeSubject {
    const { token } = parseOrThrow(UNSUBSCRIBE_QUERY, query);
    if (!token) throw new HeraldError('HERALD_ERR_UNAUTHORIZED', 'missing token: use the link of the email as it came');
    return deps.tokens.verify(token);
  }

  // In a scope of its own: only these routes take form bodies.
  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    scope.addContentTypeParser('multipart/form-data', { parseAs: 'string' }, (req, body, done) => {
      try {
        done(null, multipartFields(body as string, req.headers['content-type'] ?? ''));
      } catch (e) {
        done(e as Error, undefined);
      }
    });

    scope.get(
      '/v1/unsubscribe',
      {
        schema: {
          tags: ['users'],
          summary:
            "The page of an email's unsubscribe link: a button that sends the one-click POST (a GET changes nothing)",
          querystring: doc(UNSUBSCRIBE_QUERY),
          security: SECURITY,
          response: {
            200: HTML_ANSWER('A page with the button'),
            ...errorResponses(401, 'HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN'),
          },
        },
      },
      async (req, reply) => {
        const s = subjectOf(req.query);
        const token = deps.tokens.sign(s);
        return page(
          reply,
          'Unsubscribe',
          `<p>Stop receiving <strong>${escapeHtml(s.category)}</strong> messages by ${escapeHtml(s.channel)}?</p>
<form method="post" action="?token=${escapeHtml(token)}">
<input type="hidden" name="${FIELD}" value="${ONE_CLICK}">
<button type="submit">Unsubscribe</button>
</form>`,
        );
      },
    );

    scope.post(
      '/v1/unsubscribe',
      {
        bodyLimit: BODY_LIMIT,
        schema: {
          tags: ['users'],
          summary: 'One-click unsubscribe (RFC 8058): opts the user out of the category on the channel the token names',
          querystring: doc(UNSUBSCRIBE_QUERY),
          security: SECURITY,
          body: {
            type: 'object',
            required: [FIELD],
            properties: { [FIELD]: { type: 'string', enum: [ONE_CLICK] } },
          },
          consumes: ['application/x-www-form-urlencoded', 'multipart/form-data'],
          response: {
            200: HTML_ANSWER('Unsubscribed (also when the user already was)'),
            ...errorResponses(400, 401, 413, 415),
          },
        },
      },
      async (req, reply) => {
        const s = subjectOf(req.query);
        const body = req.body as Record<string, unknown> | undefined;
        if (body?.[FIELD] !== ONE_CLICK) {
          throw validationError([{ field: FIELD, message: `the body must be ${FIELD}=${ONE_CLICK} (RFC 8058)` }]);
        }
        await store.optOut(s.userId, s.category, s.channel);
        decisionContexts?.forget(s.userId);
        const required = await deps.isRequired(s.category);
        return page(
          reply,
          'Unsubscribed',
          `<p>You will no longer receive <strong>${escapeHtml(s.category)}</strong> messages by ${escapeHtml(s.channel)}.</p>${
            required
              ? '\n<p>Messages of this kind are required (such as security notices) and will still arrive.</p>'
              : ''
          }`,
        );
      },
    );
  });
}

function page(reply: FastifyReply, title: string, main: string) {
  return reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}button{font:inherit;padding:.5rem 1.25rem}</style>
</head><body><main>
<h1>${title}</h1>
${main}
</main></body></html>
`);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The text fields of a multipart/form-data body (RFC 7578), first of each name. */
export function multipartFields(body: string, contentType: string): Record<string, string> {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) {
    throw validationError([{ field: 'Content-Type', message: 'multipart/form-data without a boundary' }]);
  }
  const fields: Record<string, string> = {};
  for (const part of body.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const end = part.indexOf('\r\n\r\n');
    if (end < 0) continue;
    const name = /^content-disposition:\s*form-data;[^\r\n]*?\bname="([^"]*)"/im.exec(part.slice(0, end))?.[1];
    if (name !== undefined && !Object.hasOwn(fields, name)) fields[name] = part.slice(end + 4).replace(/\r\n$/, '');
  }
  return fields;
}
