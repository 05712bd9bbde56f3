import { describe, expect, it } from 'vitest';
import { parseDeviceRequest } from '../core/device-input.ts';
import { notificationRequestSchema, userProfileSchema } from '../core/input.ts';
import { EXAMPLES, SHAPES } from './openapi-shapes.ts';
import { DEVICE_EXAMPLES, DEVICE_SHAPES } from './openapi-shapes-users.ts';

describe('the OpenAPI examples', () => {
  it.each(Object.entries(SHAPES))('%s: the example has exactly the documented shape', (_name, shape) => {
    const r = shape.schema.safeParse(shape.example);
    expect(r.success ? [] : r.error.issues).toEqual([]);
  });

  it('the documented shapes are strict: an undocumented field is refused', () => {
    expect(SHAPES.accepted.schema.safeParse({ ...SHAPES.accepted.example, extra: 1 }).success).toBe(false);
  });

  it('the request examples are requests Herald accepts', () => {
    expect(notificationRequestSchema.safeParse(EXAMPLES.notificationRequest).success).toBe(true);
    expect(userProfileSchema.safeParse(EXAMPLES.userProfileRequest).success).toBe(true);
  });
});

describe('the device examples', () => {
  it.each(Object.entries(DEVICE_SHAPES))('%s: the example has exactly the documented shape', (_name, shape) => {
    const r = shape.schema.safeParse(shape.example);
    expect(r.success ? [] : r.error.issues).toEqual([]);
  });

  it('the request example and the listed tokens are registrations Herald accepts, unchanged', () => {
    expect(parseDeviceRequest(DEVICE_EXAMPLES.deviceRequest)).toEqual(DEVICE_EXAMPLES.deviceRequest);
    for (const { provider, token } of DEVICE_SHAPES.devices.example.items) {
      expect(parseDeviceRequest({ provider, token })).toEqual({ provider, token });
    }
  });
});
