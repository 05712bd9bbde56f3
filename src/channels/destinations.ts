/**
 * Where a delivery goes, for the per-destination limit of the worker (src/core/destination-limit.ts):
 * the origin (scheme, host, port) of the URL its user supplied — `webhookUrl` for `webhook`,
 * `chatWebhookUrl` for `chat`. Two users whose URLs share an origin share that receiver's limit. Other
 * channels go to providers the operator configured (SMTP, Twilio, FCM, APNs, and Web Push's push
 * services): not limited here (null).
 *
 * The chat URL is not read by the take statement: it is read here, by the user's id, and handed on
 * in the job (`user.chatWebhookUrl`), so the chat provider does not read it a second time. A URL
 * that does not parse has no destination: the provider refuses it as it would have.
 */
import type { DestinationResolver } from '../core/destination-limit.ts';
import type { UserStore } from '../core/ports.ts';
import type { DeliveryJob } from '../core/types.ts';

export function destinationOf(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? null : origin;
  } catch {
    return null;
  }
}

export function destinationResolver(users: Pick<UserStore, 'getUser'>): DestinationResolver<DeliveryJob> {
  return async (job) => {
    if (job.channel === 'webhook') return { job, destination: destinationOf(job.user?.webhookUrl) };
    if (job.channel !== 'chat' || job.user === null) return { job, destination: null };
    if (job.user.chatWebhookUrl !== undefined) return { job, destination: destinationOf(job.user.chatWebhookUrl) };
    const url = (await users.getUser(job.userId))?.chatWebhookUrl ?? null;
    return { job: { ...job, user: { ...job.user, chatWebhookUrl: url } }, destination: destinationOf(url) };
  };
}
