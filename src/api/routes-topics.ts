/**
 * Topic subscribers (producer): `PUT` adds users (`{"added": n}`: those not subscribed before),
 * `DELETE` with the same body removes them (`{"removed": n}`), `GET …/subscribers` pages through them
 * in user id order, `GET /v1/topics/{topic}` counts them. A topic exists as soon as anyone
 * subscribes; one nobody subscribes to reads as `{"subscribers": 0}`, not 404 (a topic is only a
 * name a producer sends to). What subscribing means for fan-out: src/core/topics.ts.
 */
import type { FastifyInstance } from 'fastify';
import { parseOrThrow } from '../core/input.ts';
import { MAX_SUBSCRIBERS_PER_CALL, parseSubscribers, parseTopicName, subscribersBodySchema } from '../core/topics.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { TOPIC_EXAMPLES, TOPIC_PARAMS, TOPIC_QUERY, TOPIC_SHAPES } from './openapi-topics.ts';
import type { ApiDeps } from './server.ts';

/** 10,000 ids of up to 200 characters, quoted and separated: more than the default body limit. */
const SUBSCRIBERS_BODY_LIMIT = Math.ceil(MAX_SUBSCRIBERS_PER_CALL * 205 * 1.5);

export function topicRoutes(app: FastifyInstance, { store, config }: ApiDeps): void {
  const bodyLimit = Math.max(config.maxBodyBytes, SUBSCRIBERS_BODY_LIMIT);
  const topicOf = (params: unknown) => parseTopicName(String((params as { topic?: unknown }).topic ?? ''));
  const body = doc(subscribersBodySchema, { example: TOPIC_EXAMPLES.subscribers });

  app.put(
    '/v1/topics/:topic/subscribers',
    {
      bodyLimit,
      config: { auth: 'producer' },
      schema: {
        tags: ['topics'],
        summary: `Subscribe users to a topic (up to ${MAX_SUBSCRIBERS_PER_CALL} per call)`,
        params: doc(TOPIC_PARAMS.topic),
        body,
        response: { 200: ok(TOPIC_SHAPES.added), ...errorResponses(400, 401, 413) },
      },
    },
    async (req) => {
      const topic = topicOf(req.params);
      return { added: await store.subscribe(topic, parseSubscribers(req.body)) };
    },
  );

  app.delete(
    '/v1/topics/:topic/subscribers',
    {
      bodyLimit,
      config: { auth: 'producer' },
      schema: {
        tags: ['topics'],
        summary: 'Unsubscribe users from a topic (same body as PUT)',
        params: doc(TOPIC_PARAMS.topic),
        body,
        response: { 200: ok(TOPIC_SHAPES.removed), ...errorResponses(400, 401, 413) },
      },
    },
    async (req) => {
      const topic = topicOf(req.params);
      return { removed: await store.unsubscribe(topic, parseSubscribers(req.body)) };
    },
  );

  app.get(
    '/v1/topics/:topic/subscribers',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['topics'],
        summary: "A page of the topic's subscribers, in user id order",
        params: doc(TOPIC_PARAMS.topic),
        querystring: doc(TOPIC_QUERY.subscribers),
        response: { 200: ok(TOPIC_SHAPES.subscribers), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const topic = topicOf(req.params);
      const q = parseOrThrow(TOPIC_QUERY.subscribers, req.query);
      return store.listSubscribers(topic, { limit: q.limit, cursor: q.cursor ?? null });
    },
  );

  app.get(
    '/v1/topics/:topic',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['topics'],
        summary: 'A topic and its subscriber count (0 for a topic nobody subscribes to)',
        params: doc(TOPIC_PARAMS.topic),
        response: { 200: ok(TOPIC_SHAPES.topic), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const topic = topicOf(req.params);
      return { topic, subscribers: await store.countSubscribers(topic) };
    },
  );
}
