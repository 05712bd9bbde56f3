/**
 * A user's push devices (producer or that user): register (idempotent: the same token again is the
 * same device, `200` with its id), list, and remove. Tokens are validated here once
 * (core/device-input.ts); a Web Push endpoint must pass the egress policy the push channel will
 * connect under. A user holds at most MAX_DEVICES_PER_USER devices (`409` beyond).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { EgressPolicy } from '../channels/egress-policy.ts';
import { deviceRequestSchema, parseDeviceRequest } from '../core/device-input.ts';
import { type Device, MAX_DEVICES_PER_USER } from '../core/devices.ts';
import { HeraldError } from '../core/errors.ts';
import { idSchema, parseOrThrow } from '../core/input.ts';
import { assertMayActOn } from './auth.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { PARAMS } from './openapi-shapes.ts';
import { DEVICE_EXAMPLES, DEVICE_PARAMS, DEVICE_SHAPES } from './openapi-shapes-users.ts';
import type { ApiDeps } from './server.ts';

const userParams = z.object({ userId: idSchema });
const deviceParams = z.object({ userId: idSchema, deviceId: z.string() });

function view(d: Device) {
  return { id: d.id, provider: d.provider, token: d.token, createdAt: d.createdAt, lastUsedAt: d.lastUsedAt };
}

export function deviceRoutes(app: FastifyInstance, { store, config }: ApiDeps): void {
  const egress = new EgressPolicy(config.egressAllow);
  const checkDestination = (url: string) => egress.checkUrl(url);

  app.post(
    '/v1/users/:userId/devices',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: 'Register a push device (Web Push subscription, FCM or APNs token); the same token again is 200',
        params: doc(PARAMS.userId),
        body: doc(deviceRequestSchema, { example: DEVICE_EXAMPLES.deviceRequest }),
        response: {
          200: ok(DEVICE_SHAPES.registered),
          201: ok(DEVICE_SHAPES.registered),
          ...errorResponses(400, 401, 403, 'HERALD_ERR_TOO_MANY_DEVICES'),
        },
      },
    },
    async (req, reply) => {
      const { userId } = parseOrThrow(userParams, req.params);
      assertMayActOn(req.caller, userId);
      const token = parseDeviceRequest(req.body, checkDestination);
      const r = await store.registerDevice(userId, token, MAX_DEVICES_PER_USER);
      if (r.result === 'full') {
        throw new HeraldError(
          'HERALD_ERR_TOO_MANY_DEVICES',
          `user ${userId} already holds ${MAX_DEVICES_PER_USER} devices: delete one first`,
        );
      }
      const { id, provider, createdAt } = r.device;
      return reply.status(r.created ? 201 : 200).send({ id, provider, createdAt });
    },
  );

  app.get(
    '/v1/users/:userId/devices',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: "The user's push devices, with their tokens",
        params: doc(PARAMS.userId),
        response: { 200: ok(DEVICE_SHAPES.devices), ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const { userId } = parseOrThrow(userParams, req.params);
      assertMayActOn(req.caller, userId);
      return { items: (await store.listDevices(userId)).map(view) };
    },
  );

  app.delete(
    '/v1/users/:userId/devices/:deviceId',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: 'Remove a push device',
        params: doc(DEVICE_PARAMS.device),
        response: {
          204: { description: 'Removed; no body', type: 'null' },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (req, reply) => {
      const { userId, deviceId } = parseOrThrow(deviceParams, req.params);
      assertMayActOn(req.caller, userId);
      if (!(await store.removeDevice(deviceId, userId))) {
        throw new HeraldError('HERALD_ERR_NOT_FOUND', `user ${userId} has no device ${deviceId}`);
      }
      return reply.status(204).send();
    },
  );
}
