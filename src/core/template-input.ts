/**
 * Validation of templates and preview requests, done once at the edge: the shape (zod, sizes
 * bounded), then every Liquid field parsed (checkTemplate). A template that passes is stored as is
 * and renders without parse errors.
 */
import { z } from 'zod';
import { validationError } from './errors.ts';
import { categorySchema, dataSchema, idSchema, parseOrThrow, storable } from './input.ts';
import { CHANNEL_SECTIONS, checkTemplate, RENDER_LIMITS, type Template } from './template-render.ts';
import { CHANNELS, LANES } from './types.ts';

export const TEMPLATE_LIMITS = {
  /** Locales in one template. */
  locales: 50,
  /** The whole template as JSON, in bytes. */
  bytes: 262_144,
} as const;

const localeTag = z.string().regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'must be a BCP 47 tag, e.g. en or pt-BR');

const liquid = storable(RENDER_LIMITS.sourceChars);

const sectionOf = <const F extends readonly string[]>(fields: F) =>
  z.strictObject(
    Object.fromEntries(fields.map((f) => [f, liquid.optional()])) as Record<F[number], z.ZodOptional<typeof liquid>>,
  );

const localeTemplateSchema = z.strictObject({
  title: liquid.optional(),
  body: liquid.optional(),
  email: sectionOf(CHANNEL_SECTIONS.email).optional(),
  sms: sectionOf(CHANNEL_SECTIONS.sms).optional(),
  push: sectionOf(CHANNEL_SECTIONS.push).optional(),
  chat: sectionOf(CHANNEL_SECTIONS.chat).optional(),
});

export const templateSchema = z
  .strictObject({
    defaultLocale: localeTag,
    locales: z
      .record(localeTag, localeTemplateSchema)
      .refine((l) => Object.keys(l).length >= 1, 'must hold at least one locale')
      .refine((l) => Object.keys(l).length <= TEMPLATE_LIMITS.locales, `at most ${TEMPLATE_LIMITS.locales} locales`),
  })
  .refine((t) => Buffer.byteLength(JSON.stringify(t)) <= TEMPLATE_LIMITS.bytes, {
    message: `at most ${TEMPLATE_LIMITS.bytes} bytes as JSON`,
  });

export const templateCategoryParams = z.object({ category: categorySchema });

/** Parses a template and every Liquid field in it; throws HERALD_ERR_VALIDATION naming each bad place. */
export function parseTemplate(input: unknown): Template {
  const template = parseOrThrow(templateSchema, input) as Template;
  const issues = checkTemplate(template);
  if (issues.length) {
    throw validationError(issues.map(({ field, message }) => ({ field, message })));
  }
  return template;
}

export const previewRequestSchema = z.strictObject({
  locale: localeTag
    .nullable()
    .optional()
    .describe("The recipient's locale; default `user.locale`, then the template's default"),
  channel: z.enum(CHANNELS).default('in_app'),
  data: dataSchema.nullable().default(null),
  user: z
    .strictObject({
      id: idSchema.optional(),
      locale: localeTag.nullable().optional(),
      timezone: z.string().max(64).nullable().optional(),
    })
    .default({}),
  title: storable(1_000).nullable().default(null).describe("The notification's own title (the last fallback)"),
  body: storable(20_000).nullable().default(null).describe("The notification's own body (the last fallback)"),
  priority: z.enum(LANES).default('normal'),
});

export type PreviewRequest = z.output<typeof previewRequestSchema>;
