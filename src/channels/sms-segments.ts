/**
 * How many SMS segments a text takes, as a carrier counts them (3GPP TS 23.038 / 23.040).
 *
 * - A text made only of characters of the GSM 03.38 default alphabet is sent as GSM-7: 160 septets
 *   in one message, 153 per segment once it needs several (the rest is the concatenation header).
 *   The characters of the extension table (`^ { } \ [ ~ ] | €` and form feed) take two septets (an
 *   escape and the character); an escaped pair is never split across two segments.
 * - Any other character makes the whole text UCS-2: 70 UTF-16 code units in one message, 67 per
 *   segment; a surrogate pair (an emoji) is never split across two segments.
 *
 * An empty text counts as one segment (what a carrier bills). Pure: no I/O.
 */

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SmsSegments {
  encoding: SmsEncoding;
  segments: number;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes. */
  units: number;
}

/** The GSM 03.38 default alphabet (the escape at 0x1B is not a character of its own). */
const GSM7_BASIC = new Set(
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
);
/** The extension table: each is sent as escape + character, two septets. */
const GSM7_EXTENSION = new Set('\f^{}\\[~]|€');

const LIMITS: Record<SmsEncoding, { single: number; multi: number }> = {
  'GSM-7': { single: 160, multi: 153 },
  'UCS-2': { single: 70, multi: 67 },
};

/** Cost of each indivisible unit of the text, or null when the text is not GSM-7. */
function gsm7Costs(text: string): number[] | null {
  const costs: number[] = [];
  for (const ch of text) {
    if (GSM7_BASIC.has(ch)) costs.push(1);
    else if (GSM7_EXTENSION.has(ch)) costs.push(2);
    else return null;
  }
  return costs;
}

function ucs2Costs(text: string): number[] {
  // Iterating a string yields code points: a surrogate pair is one item of length 2.
  return Array.from(text, (ch) => ch.length);
}

/** Packs indivisible units into segments of `size`; the count of segments. */
function pack(costs: readonly number[], size: number): number {
  let segments = 1;
  let used = 0;
  for (const c of costs) {
    if (used + c > size) {
      segments++;
      used = 0;
    }
    used += c;
  }
  return segments;
}

export function smsSegments(text: string): SmsSegments {
  const gsm = gsm7Costs(text);
  const encoding: SmsEncoding = gsm ? 'GSM-7' : 'UCS-2';
  const costs = gsm ?? ucs2Costs(text);
  const units = costs.reduce((a, b) => a + b, 0);
  const limit = LIMITS[encoding];
  const segments = units <= limit.single ? 1 : pack(costs, limit.multi);
  return { encoding, segments, units };
}
