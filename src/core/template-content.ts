/**
 * The ContentRenderer of dispatch: a leased delivery's text, rendered from its category's template
 * for its user (locale, time zone) and channel, put on the job as `content`.
 *
 * Promises:
 * - A category without a template leaves the job as it is (no `content`): every channel then shows
 *   the notification's own title and body, exactly as before templates existed. After the first
 *   delivery of such a category this costs a map lookup (TemplateCache), no store round trip.
 * - Fields are resolved one by one as API.md says (template-render.ts `render`): the user's locale
 *   (its channel section, then its title/body), then the template's default locale, then the
 *   notification's own title/body. A delivery to a user without a profile renders with the default
 *   locale.
 * - A render that fails (a time or size limit, a filter that throws, a stored template that no
 *   longer compiles) does not lose the delivery: its content is the notification's own title and
 *   body, and `templateError` says which field failed and why (the timeline's `sent` event carries
 *   it). When the notification has neither title nor body there is nothing to fall back to: the
 *   Dispatcher then fails the delivery permanently with that text (a dead letter, replayable once
 *   the template is fixed).
 * - A digest's job (`job.digest`) renders with the `digest` variable (its items and count) beside the
 *   rest; its `notification` is the digest's default text (src/core/digest-text.ts).
 * - A store that cannot be read throws: the worker treats that as a transient failure and retries.
 */
import type { ContentRenderer } from './dispatch.ts';
import type { TemplateCache } from './template-cache.ts';
import { render, TemplateRenderError } from './template-render.ts';
import type { DeliveryContent, DeliveryJob, JsonValue } from './types.ts';

export class TemplateContentRenderer implements ContentRenderer {
  constructor(private readonly templates: Pick<TemplateCache, 'get'>) {}

  async render(job: DeliveryJob): Promise<DeliveryJob> {
    const n = job.notification;
    const cached = await this.templates.get(n.category);
    if (!cached) return job;
    if ('error' in cached) return { ...job, content: ownText(job, cached.error) };
    const user = job.user;
    const data = n.data && typeof n.data === 'object' && !Array.isArray(n.data) ? n.data : null;
    try {
      const fields = await render(
        cached.compiled.template,
        {
          locale: user?.locale ?? null,
          channel: job.channel,
          data: data as Record<string, JsonValue> | null,
          user: { id: job.userId, locale: user?.locale ?? null, timezone: user?.timezone ?? null },
          notification: { id: n.id, category: n.category, priority: n.priority, title: n.title, body: n.body },
          ...(job.digest && { digest: job.digest }),
        },
        cached.compiled,
      );
      return { ...job, content: fields };
    } catch (e) {
      if (e instanceof TemplateRenderError) return { ...job, content: ownText(job, e) };
      throw e;
    }
  }
}

/** The notification's own title and body, and why the template's are not there. */
function ownText(job: DeliveryJob, error: TemplateRenderError): DeliveryContent {
  return { title: job.notification.title, body: job.notification.body, templateError: error.message };
}
