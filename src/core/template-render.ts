/**
 * Liquid templates per category: their shape, their validation when saved, and rendering one
 * recipient's fields for one channel.
 *
 * Promises:
 * - A template is input from the API, so Liquid runs fenced in: no file system or partials (the
 *   `include`, `render` and `layout` tags do not exist, and the engine's file lookup is an empty
 *   in-memory map), unknown filters are parse errors (`strictFilters`), only own properties of the
 *   variables are visible, and every render is bounded — in time (RENDER_LIMITS.ms per field), in
 *   allocation (`memoryLimit`: ranges, appends, joins) and in output (RENDER_LIMITS.outputChars per
 *   field). A render that exceeds a bound rejects with TemplateRenderError (naming the field); it
 *   never hangs or grows without bound. A caller delivering a message should treat that error as
 *   permanent: the same template and data fail the same way again.
 * - Email `html` fields escape every output (`outputEscape: 'escape'`; `| raw` opts out); other
 *   fields are plain text, unescaped.
 * - Fields are resolved one by one (`resolveFields`): the user's locale (its channel section, then
 *   its `title`/`body`), then `defaultLocale` (same order), then the notification's own
 *   `title`/`body`. A locale is matched exactly, then by its language alone (`de-AT` → `de`).
 *
 * - `compileTemplate` parses every field once; `render` given the result parses nothing (a cache of
 *   compiled templates per category: src/core/template-cache.ts).
 *
 * Not done here: storage (TemplateStore), choosing the channel, caching.
 */
import { Liquid, LiquidError, type Template as ParsedLiquid } from 'liquidjs';
import type { Channel, DigestVariable, JsonValue, Priority } from './types.ts';

/** The channel sections a locale may carry, and their fields. in_app and webhook carry title/body. */
export const CHANNEL_SECTIONS = {
  email: ['subject', 'html', 'text'],
  sms: ['text'],
  push: ['title', 'body'],
  chat: ['text'],
} as const;

export type SectionChannel = keyof typeof CHANNEL_SECTIONS;

export interface LocaleTemplate {
  title?: string;
  body?: string;
  email?: { subject?: string; html?: string; text?: string };
  sms?: { text?: string };
  push?: { title?: string; body?: string };
  chat?: { text?: string };
}

export interface Template {
  defaultLocale: string;
  locales: Record<string, LocaleTemplate>;
}

export interface RenderContext {
  /** The recipient's locale (`de`, `de-AT`), or null: then `defaultLocale`. */
  locale: string | null;
  channel: Channel;
  data: Record<string, JsonValue> | null;
  user: { id: string | null; locale: string | null; timezone: string | null };
  notification: {
    id: string | null;
    category: string;
    priority: Priority;
    title: string | null;
    body: string | null;
  };
  /**
   * A digest's collected notifications (`digest.items`, newest first) and their exact `count`; absent
   * when one notification is rendered (then `digest` is undefined in the template: `{% if digest %}`).
   */
  digest?: DigestVariable;
}

/** What one recipient gets on one channel: title and body always, and the channel's section when it has one. */
export interface RenderedFields {
  title: string | null;
  body: string | null;
  email?: { subject: string | null; html: string | null; text: string | null };
  sms?: { text: string | null };
  push?: { title: string | null; body: string | null };
  chat?: { text: string | null };
}

export const RENDER_LIMITS = {
  /** Longest time one field may take to render (liquidjs `renderLimit`), in ms. */
  ms: 200,
  /** Allocation budget of one field's render (liquidjs `memoryLimit`: characters and array items created). */
  memory: 10_000_000,
  /** Longest rendered field, in characters. */
  outputChars: 100_000,
  /** Longest template field, in characters (also liquidjs `parseLimit`). */
  sourceChars: 20_000,
} as const;

/** A template field that does not parse: `field` is its place (`locales.de.email.subject`). */
export interface TemplateIssue {
  field: string;
  message: string;
  line: number | null;
  column: number | null;
}

/** A render failed (a limit was exceeded, a filter threw). Retrying with the same input fails the same way. */
export class TemplateRenderError extends Error {
  readonly field: string;
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.name = 'TemplateRenderError';
    this.field = field;
  }
}

function engine(html: boolean): Liquid {
  const liquid = new Liquid({
    // An empty in-memory map instead of the file system: nothing can be looked up.
    templates: {},
    strictFilters: true,
    strictVariables: false,
    ownPropertyOnly: true,
    parseLimit: RENDER_LIMITS.sourceChars,
    renderLimit: RENDER_LIMITS.ms,
    memoryLimit: RENDER_LIMITS.memory,
    ...(html && { outputEscape: 'escape' as const }),
  });
  // Partials and layouts would read other templates: these tags do not exist here (a parse error).
  for (const tag of ['include', 'render', 'layout']) delete liquid.tags[tag];
  return liquid;
}

const TEXT = engine(false);
const HTML = engine(true);

const isHtml = (path: string) => path.endsWith('email.html');

/** Every Liquid field of a template, with its place: `[["locales.en.title", "…"], …]`. */
function fieldsOf(template: Template): [string, string][] {
  const out: [string, string][] = [];
  for (const [locale, t] of Object.entries(template.locales)) {
    const at = `locales.${locale}`;
    if (t.title !== undefined) out.push([`${at}.title`, t.title]);
    if (t.body !== undefined) out.push([`${at}.body`, t.body]);
    for (const channel of Object.keys(CHANNEL_SECTIONS) as SectionChannel[]) {
      const section = t[channel] as Record<string, string | undefined> | undefined;
      if (!section) continue;
      for (const f of CHANNEL_SECTIONS[channel]) {
        const source = section[f];
        if (source !== undefined) out.push([`${at}.${channel}.${f}`, source]);
      }
    }
  }
  return out;
}

/** A template with every field parsed, by its place (`locales.de.email.subject`): what `render` reuses. */
export interface CompiledTemplate {
  template: Template;
  parsed: ReadonlyMap<string, ParsedLiquid[]>;
}

/** Parses every field once. Throws TemplateRenderError (naming the field) for one that does not parse. */
export function compileTemplate(template: Template): CompiledTemplate {
  const parsed = new Map<string, ParsedLiquid[]>();
  for (const [field, source] of fieldsOf(template)) {
    try {
      parsed.set(field, (isHtml(field) ? HTML : TEXT).parse(source));
      // A locale's body is also email's HTML part when the locale has no `email.html`: escaped.
      if (/^locales\.[^.]+\.body$/.test(field)) parsed.set(`html:${field}`, HTML.parse(source));
    } catch (e) {
      throw new TemplateRenderError(field, parseIssue(field, e).message, { cause: e });
    }
  }
  return { template, parsed };
}

/** Parses every field; returns one issue per field that does not parse (empty: the template is valid). */
export function checkTemplate(template: Template): TemplateIssue[] {
  const issues: TemplateIssue[] = [];
  if (!Object.hasOwn(template.locales, template.defaultLocale)) {
    issues.push({
      field: 'defaultLocale',
      message: `must be one of the template's locales (${Object.keys(template.locales).join(', ')})`,
      line: null,
      column: null,
    });
  }
  for (const [field, source] of fieldsOf(template)) {
    try {
      (isHtml(field) ? HTML : TEXT).parse(source);
    } catch (e) {
      issues.push(parseIssue(field, e));
    }
  }
  return issues;
}

function parseIssue(field: string, e: unknown): TemplateIssue {
  if (e instanceof LiquidError) {
    const position = e.token?.getPosition();
    const line = position?.[0] ?? null;
    const column = position?.[1] ?? null;
    // liquidjs appends ", line:1, col:6" to its message; the position is given separately.
    const message = e.message.split('\n')[0]?.replace(/, line:\d+, col:\d+$/, '') ?? e.message;
    const where = line === null ? '' : ` (line ${line}, column ${column})`;
    return { field, message: `does not parse: ${message}${where}`, line, column };
  }
  return { field, message: `does not parse: ${(e as Error).message}`, line: null, column: null };
}

/** The template's locale for `wanted`: exact (case-insensitive), then its language alone; null when absent. */
export function matchLocale(template: Template, wanted: string | null): string | null {
  if (!wanted) return null;
  const names = Object.keys(template.locales);
  const exact = names.find((n) => n.toLowerCase() === wanted.toLowerCase());
  if (exact) return exact;
  const language = wanted.split(/[-_]/)[0]?.toLowerCase();
  return names.find((n) => n.toLowerCase() === language) ?? null;
}

/** What a field falls back to inside a locale when the channel section lacks it. */
type Fallback = 'title' | 'body' | 'title+body';

const FALLBACKS: Record<SectionChannel, Record<string, Fallback>> = {
  email: { subject: 'title', html: 'body', text: 'body' },
  sms: { text: 'title+body' },
  push: { title: 'title', body: 'body' },
  chat: { text: 'title+body' },
};

/** Title and body joined the way SMS and chat show them: "title: body", or whichever is there. */
export function joinTitleBody(title: string | null, body: string | null): string | null {
  if (title && body) return `${title}: ${body}`;
  return title || body || null;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

/**
 * Renders `template` for one recipient on `context.channel` (from `compiled`'s parsed fields when
 * given: then nothing is parsed again). Rejects with TemplateRenderError when a field exceeds a limit
 * or fails to render.
 */
export async function render(
  template: Template,
  context: RenderContext,
  compiled?: CompiledTemplate,
): Promise<RenderedFields> {
  const scope = {
    data: context.data ?? {},
    user: context.user,
    notification: context.notification,
    ...(context.digest && { digest: context.digest }),
  };
  const chain = [matchLocale(template, context.locale), template.defaultLocale].filter(
    (l, i, all): l is string => l !== null && Object.hasOwn(template.locales, l) && all.indexOf(l) === i,
  );

  const renderSource = async (field: string, source: string, html: boolean): Promise<string> => {
    let out: string;
    try {
      const engine = html ? HTML : TEXT;
      const parsed = compiled?.parsed.get(html && !isHtml(field) ? `html:${field}` : field);
      out = parsed ? await engine.render(parsed, scope) : await engine.parseAndRender(source, scope);
    } catch (e) {
      const message = e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e);
      throw new TemplateRenderError(field, message, { cause: e });
    }
    if (out.length > RENDER_LIMITS.outputChars) {
      throw new TemplateRenderError(field, `renders ${out.length} characters, more than ${RENDER_LIMITS.outputChars}`);
    }
    return out;
  };

  /** title or body: the first locale of the chain that has it, else the notification's own. */
  const generic = async (name: 'title' | 'body', html: boolean): Promise<string | null> => {
    for (const locale of chain) {
      const source = template.locales[locale]?.[name];
      if (source !== undefined) return renderSource(`locales.${locale}.${name}`, source, html);
    }
    const own = context.notification[name];
    return own !== null && html ? escapeHtml(own) : own;
  };

  const title = await generic('title', false);
  const body = await generic('body', false);
  const fields: RenderedFields = { title, body };
  if (!(context.channel in CHANNEL_SECTIONS)) return fields;

  const channel = context.channel as SectionChannel;
  const section: Record<string, string | null> = {};
  for (const f of CHANNEL_SECTIONS[channel]) {
    const fallback = FALLBACKS[channel][f] as Fallback;
    const html = channel === 'email' && f === 'html';
    section[f] = await sectionField(channel, f, fallback, html);
  }
  return { ...fields, [channel]: section };

  async function sectionField(channel: SectionChannel, f: string, fallback: Fallback, html: boolean) {
    for (const locale of chain) {
      const t = template.locales[locale] as LocaleTemplate;
      const source = (t[channel] as Record<string, string | undefined> | undefined)?.[f];
      if (source !== undefined) return renderSource(`locales.${locale}.${channel}.${f}`, source, html);
      // This locale has no such section field: its title/body come next, before the next locale.
      if (fallback === 'title+body') {
        if (t.title !== undefined || t.body !== undefined) return joinTitleBody(title, body);
      } else if (t[fallback] !== undefined) {
        return html
          ? renderSource(`locales.${locale}.${fallback}`, t[fallback], true)
          : fallback === 'title'
            ? title
            : body;
      }
    }
    if (fallback === 'title+body') return joinTitleBody(title, body);
    return generic(fallback, html);
  }
}
