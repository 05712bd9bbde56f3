/**
 * Validation of `PUT /v1/categories/{category}` (API.md Part 2), done once at the edge, and the shape
 * `GET` gives back. The body is the whole policy (a PUT replaces it); every field may be left out:
 *
 * - `priority`: a lane; `channels`: channel names (no steps), at least one, none repeated. Used by
 *   notifications of the category that do not give their own.
 * - `required` (default false): opt-outs are ignored. `quietHours` (default true): they apply.
 * - `digest`: `{"window": "<ISO 8601 duration>"}` (PT1M to P31D) or `{"cron": "<5 fields>"}`.
 * - `caps`: per channel `{"max": 1…1,000,000, "per": "<duration>" (PT1S to P31D), "overflow":
 *   "digest" | "drop"}`; `overflow: "digest"` needs a `digest` (else `caps.<channel>.overflow`).
 * - `ttl`: how long a notification of the category lives (PT1S to P366D).
 *
 * Every refusal is HERALD_ERR_VALIDATION naming the field: `digest.cron`, `caps.email.per`, `caps.fax`.
 */
import { z } from 'zod';
import { cronProblem } from './digest-window.ts';
import { type FieldIssue, validationError } from './errors.ts';
import { issuesOf, ttlSchema } from './input.ts';
import { parseIsoDuration } from './iso-duration.ts';
import { type CategoryPolicy, CHANNELS, LANES } from './types.ts';

export const POLICY_LIMITS = {
  /** A digest window: PT1M to P31D. */
  minWindowMs: 60_000,
  maxWindowMs: 31 * 86_400_000,
  /** A cap's `per`: PT1S to P31D. */
  minPerMs: 1000,
  maxPerMs: 31 * 86_400_000,
  maxCap: 1_000_000,
} as const;

function durationSchema(minMs: number, maxMs: number, minText: string) {
  return z
    .string({ error: 'must be an ISO 8601 duration such as PT1H' })
    .max(40, 'at most 40 characters')
    .transform((text, ctx) => {
      const d = parseIsoDuration(text, maxMs);
      if (!d.ok || d.ms < minMs) {
        ctx.addIssue({ code: 'custom', message: d.ok ? `must be at least ${minText}` : d.message });
        return z.NEVER;
      }
      return { text, ms: d.ms };
    });
}

const digestSchema = z.union(
  [
    z.strictObject({ window: durationSchema(POLICY_LIMITS.minWindowMs, POLICY_LIMITS.maxWindowMs, 'PT1M') }),
    z.strictObject({
      cron: z
        .string({ error: 'must be a cron expression such as "0 9 * * *"' })
        .max(200, 'at most 200 characters')
        .superRefine((text, ctx) => {
          const problem = cronProblem(text);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
    }),
  ],
  { error: 'must be {"window": "PT1H"} or {"cron": "0 9 * * *"}' },
);

const capSchema = z.strictObject({
  max: z
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(POLICY_LIMITS.maxCap, `at most ${POLICY_LIMITS.maxCap}`),
  per: durationSchema(POLICY_LIMITS.minPerMs, POLICY_LIMITS.maxPerMs, 'PT1S'),
  overflow: z.enum(['digest', 'drop'], 'must be "digest" or "drop"'),
});

export const categoryPolicySchema = z.strictObject({
  priority: z
    .enum(LANES, `must be one of ${LANES.join(', ')}`)
    .nullable()
    .default(null),
  channels: z
    .array(z.enum(CHANNELS, `must be one of ${CHANNELS.join(', ')}`))
    .min(1, 'must name at least one channel')
    .refine((c) => new Set(c).size === c.length, 'must not repeat a channel')
    .nullable()
    .default(null),
  required: z.boolean({ error: 'must be true or false' }).default(false),
  quietHours: z.boolean({ error: 'must be true or false' }).default(true),
  digest: digestSchema.nullable().default(null),
  caps: z.partialRecord(z.enum(CHANNELS), capSchema).default({}),
  ttl: ttlSchema.nullable().default(null),
});

/** The body of a PUT as a policy (without `updatedAt`); throws HERALD_ERR_VALIDATION naming each bad field. */
export function parseCategoryPolicy(category: string, input: unknown): Omit<CategoryPolicy, 'updatedAt'> {
  const r = categoryPolicySchema.safeParse(input ?? {});
  if (!r.success) throw validationError(policyIssues(r.error));
  const p = r.data;
  const caps: CategoryPolicy['caps'] = {};
  const issues: FieldIssue[] = [];
  for (const [channel, cap] of Object.entries(p.caps)) {
    if (!cap) continue;
    if (cap.overflow === 'digest' && !p.digest) {
      issues.push({
        field: `caps.${channel}.overflow`,
        message: '"digest" needs the category\'s digest (window or cron); give one, or use "drop"',
      });
    }
    caps[channel as keyof CategoryPolicy['caps']] = {
      max: cap.max,
      per: cap.per.text,
      perMs: cap.per.ms,
      overflow: cap.overflow,
    };
  }
  if (issues.length) throw validationError(issues);
  return {
    category,
    priority: p.priority,
    channels: p.channels,
    required: p.required,
    quietHours: p.quietHours,
    digest: !p.digest
      ? null
      : 'cron' in p.digest
        ? { cron: p.digest.cron }
        : { window: p.digest.window.text, windowMs: p.digest.window.ms },
    caps,
    ttl: p.ttl?.text ?? null,
    ttlMs: p.ttl?.ms ?? null,
  };
}

/** A policy as GET answers it: the request's shape (durations as given), with its category and `updatedAt`. */
export function categoryPolicyView(p: CategoryPolicy) {
  return {
    category: p.category,
    priority: p.priority,
    channels: p.channels,
    required: p.required,
    quietHours: p.quietHours,
    digest: !p.digest ? null : 'cron' in p.digest ? { cron: p.digest.cron } : { window: p.digest.window },
    caps: Object.fromEntries(
      Object.entries(p.caps).map(([c, cap]) => [c, { max: cap.max, per: cap.per, overflow: cap.overflow }]),
    ),
    ttl: p.ttl,
    updatedAt: p.updatedAt,
  };
}

/** Zod's issues, with an unknown channel under `caps` named as such (`caps.fax`). */
function policyIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.flatMap((i): FieldIssue[] => {
    if (i.code === 'unrecognized_keys' && i.path[0] === 'caps') {
      return i.keys.map((k) => ({
        field: `caps.${k}`,
        message: `unknown channel: must be one of ${CHANNELS.join(', ')}`,
      }));
    }
    if (i.code === 'invalid_key' && i.path[0] === 'caps') {
      return [
        { field: i.path.map(String).join('.'), message: `unknown channel: must be one of ${CHANNELS.join(', ')}` },
      ];
    }
    if (i.code === 'invalid_union' && i.path[0] === 'digest') {
      // The branch of the key given (window or cron) says what is wrong with it.
      const own = i.errors.find((branch) => !branch.some((b) => b.code === 'unrecognized_keys'));
      if (own?.length) return issuesOf(new z.ZodError(own.map((b) => ({ ...b, path: [...i.path, ...b.path] }))));
    }
    return issuesOf(new z.ZodError([i]));
  });
}
