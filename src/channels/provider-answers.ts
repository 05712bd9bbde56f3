/**
 * Reading an operator-configured provider's HTTP answer (Twilio, FCM): a bounded body, a JSON
 * object or nothing, and a failure named in a few words. Nothing here throws.
 */

/** Bytes of a provider's answer read at most; the rest is dropped with the connection. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** A request failure in a few words: `timed out`, or the error's code and message. */
export function failure(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} ${e.message}` : e.message;
  }
  return String(e);
}

/** The body as text, at most MAX_ANSWER_BYTES of it. */
export async function readCapped(body: AsyncIterable<Buffer> & { destroy?(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy?.();
      break;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The text as a JSON object, or null when it is not one. */
export function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
