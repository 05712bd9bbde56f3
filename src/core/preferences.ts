/**
 * A user's preferences (API.md Part 2, "Preferences and category policies") and the one rule that
 * reads them today: whether the user opted out of a category on a channel. Pure: no I/O.
 *
 * The rule, for category C on channel X — the most specific entry that says something about X wins:
 *
 * 1. `categories[C]` (the exact key);
 * 2. then the prefix keys that cover C, longest first: for `a.b.c`, `a.b.*` before `a.*`. A key
 *    `p.*` covers every category below `p` (`p.x`, `p.x.y`), not `p` itself (a glob);
 * 3. then `channels[X]`;
 * 4. nothing says anything: not opted out.
 *
 * An entry says something about X when it is a boolean (`false`: every channel off; `true`: every
 * channel on) or an object that names X. An object that does not name X passes the question on to
 * the next entry, so `{"marketing.*": false, "marketing.weekly": {"email": true}}` receives the
 * weekly marketing email and nothing else of marketing. A category entry is more specific than a
 * channel entry: `{"channels": {"email": false}, "categories": {"billing.*": {"email": true}}}`
 * receives billing email and no other email.
 *
 * Quiet hours, category policies and the other decisions: src/core/decider-rules.ts. `isRequired`
 * is the hook through which gates and unsubscribe links ask a category's policy.
 */
import type { Channel } from './types.ts';

/** Per channel: `false` opts out, `true` opts in (overriding a less specific `false`). */
export type ChannelSwitches = Partial<Record<Channel, boolean>>;

export interface Preferences {
  /** Per channel, for every category. */
  channels: ChannelSwitches;
  /** Per category (`comment.reply`) or category prefix (`marketing.*`): all channels, or per channel. */
  categories: Record<string, boolean | ChannelSwitches>;
  /** `HH:MM` in the user's time zone (UTC if none); enforced by the decider (decider-rules.ts). */
  quietHours: { start: string; end: string } | null;
}

/** What a user who never set preferences has (and what GET answers for them). */
export function emptyPreferences(): Preferences {
  return { channels: {}, categories: {}, quietHours: null };
}

/**
 * Whether messages of a category ignore opt-outs (a password reset): the category policy's
 * `required` (CategoryPolicyCache.isRequired); NOTHING_REQUIRED where there are no policies (tests).
 */
export type IsRequired = (category: string) => boolean | Promise<boolean>;

export const NOTHING_REQUIRED: IsRequired = () => false;

/** The keys that may speak for `category`, most specific first: `a.b.c`, `a.b.*`, `a.*`. */
export function categoryKeys(category: string): string[] {
  const keys = [category];
  const parts = category.split('.');
  for (let n = parts.length - 1; n >= 1; n--) keys.push(`${parts.slice(0, n).join('.')}.*`);
  return keys;
}

/** True when the user opted out of `category` on `channel` (see the module comment for the rule). */
export function optedOut(prefs: Preferences, category: string, channel: Channel): boolean {
  for (const key of categoryKeys(category)) {
    const entry = Object.hasOwn(prefs.categories, key) ? prefs.categories[key] : undefined;
    if (typeof entry === 'boolean') return !entry;
    if (entry && Object.hasOwn(entry, channel) && typeof entry[channel] === 'boolean') return !entry[channel];
  }
  const wide = Object.hasOwn(prefs.channels, channel) ? prefs.channels[channel] : undefined;
  return wide === false;
}
