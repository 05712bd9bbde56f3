/** The two URLs the client derives from its one `url` option. */

/** The origin in ws(s) form and the path prefix without a trailing slash ('' at the root). */
function baseOf(url: string): { base: URL; prefix: string } {
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  const base = new URL(url, page);
  if (base.protocol === 'http:') base.protocol = 'ws:';
  else if (base.protocol === 'https:') base.protocol = 'wss:';
  if (base.protocol !== 'ws:' && base.protocol !== 'wss:') {
    throw new TypeError(`Herald url must be ws:, wss:, http: or https:, not ${base.protocol}`);
  }
  const prefix = base.pathname.replace(/\/+$/, '').replace(/\/v1\/realtime$/, '');
  base.search = '';
  base.hash = '';
  return { base, prefix };
}

/** `ws(s)://host/prefix/v1/realtime?token=…&after=…` */
export function realtimeUrl(url: string, token: string, after: number | null): string {
  const { base, prefix } = baseOf(url);
  base.pathname = `${prefix}/v1/realtime`;
  base.searchParams.set('token', token);
  if (after !== null) base.searchParams.set('after', String(after));
  return base.toString();
}

/** `http(s)://host/prefix`, no trailing slash. */
export function httpBaseUrl(url: string): string {
  const { base, prefix } = baseOf(url);
  base.protocol = base.protocol === 'wss:' ? 'https:' : 'http:';
  return `${base.origin}${prefix}`;
}
