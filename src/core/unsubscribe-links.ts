/**
 * The one-click unsubscribe link of a delivery (RFC 8058): `{HERALD_PUBLIC_URL}/v1/unsubscribe?token=…`
 * with a token naming the user, the category and the channel (src/core/unsubscribe-token.ts). None
 * for a category that is required (`isRequired`, its policy: a password reset cannot be unsubscribed
 * from).
 */
import type { IsRequired } from './preferences.ts';
import type { DeliveryJob } from './types.ts';
import type { UnsubscribeTokens } from './unsubscribe-token.ts';

export class UnsubscribeLinks {
  constructor(
    /** HERALD_PUBLIC_URL, without a trailing slash. */
    private readonly publicUrl: string,
    private readonly tokens: UnsubscribeTokens,
    private readonly isRequired: IsRequired,
  ) {}

  async linkFor(job: DeliveryJob): Promise<string | null> {
    const { category } = job.notification;
    if (await this.isRequired(category)) return null;
    const token = this.tokens.sign({ userId: job.userId, category, channel: job.channel });
    return `${this.publicUrl}/v1/unsubscribe?token=${token}`;
  }
}
