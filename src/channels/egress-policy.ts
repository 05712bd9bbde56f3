/**
 * Egress policy: which addresses a user-supplied URL (webhook, chat, Web Push endpoint) may reach.
 *
 * Promises: an address is allowed only when it is public, or inside one of the operator's
 * `HERALD_EGRESS_ALLOW` blocks. Not public are loopback, private (RFC 1918, IPv6 unique local),
 * shared CGNAT, link-local (cloud metadata 169.254.169.254 included), multicast, broadcast,
 * unspecified and "this network" (0/8), documentation, benchmarking and reserved ranges, and every
 * IPv6 address outside global unicast 2000::/3. IPv6 forms that carry an IPv4 address (IPv4-mapped
 * ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96,
 * 6to4 2002::/16) are judged by that IPv4 address, so no spelling reaches what the plain one may not.
 *
 * This module only judges addresses and URLs; it connects to nothing and resolves no name. Names
 * are judged where a connection is made, on the address actually connected to (egress-http.ts).
 * The one name judged here is `localhost` (and `*.localhost`), which always means loopback.
 */
import { BlockList, isIP } from 'node:net';

export type AddressKind =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'reserved';

export interface AddressClass {
  kind: AddressKind;
  /** The IPv4 address an IPv6 address carries, when it was judged by it. */
  embedded?: string;
}

const KIND_TEXT: Record<Exclude<AddressKind, 'public'>, string> = {
  unspecified: 'an unspecified address',
  loopback: 'a loopback address',
  private: 'a private address',
  shared: 'a shared (carrier-grade NAT) address',
  'link-local': 'a link-local address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address',
  reserved: 'a reserved address',
};

/** Most specific first: the first block that holds an address gives its kind. */
const IPV4_RANGES: readonly [string, number, Exclude<AddressKind, 'public'>][] = [
  ['255.255.255.255', 32, 'broadcast'],
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

/** Inside 2000::/3 and special, or outside it with a kind more telling than "reserved". */
const IPV6_RANGES: readonly [string, number, Exclude<AddressKind, 'public'>][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fc00::', 7, 'private'],
  ['fe80::', 10, 'link-local'],
  ['ff00::', 8, 'multicast'],
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'],
  // IETF protocol assignments (Teredo, ORCHID, benchmarking 2001:2::/48, …).
  ['2001::', 23, 'reserved'],
];

function blockListOf(ranges: readonly [string, number, unknown][], type: 'ipv4' | 'ipv6'): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of ranges) list.addSubnet(net, prefix, type);
  return list;
}

const V4_LISTS = IPV4_RANGES.map(([net, prefix, kind]) => ({ kind, list: blockListOf([[net, prefix, kind]], 'ipv4') }));
const V6_LISTS = IPV6_RANGES.map(([net, prefix, kind]) => ({ kind, list: blockListOf([[net, prefix, kind]], 'ipv6') }));

function classifyV4(address: string): AddressKind {
  for (const { kind, list } of V4_LISTS) if (list.check(address, 'ipv4')) return kind;
  return 'public';
}

/** The 16 bytes of an IPv6 address (already known to be valid), or null. */
function ipv6Bytes(address: string): Uint8Array | null {
  let text = address;
  const bytes = new Uint8Array(16);
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  if (groups.length !== 8) return null;
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  return bytes;
}

const v4At = (b: Uint8Array, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const allZero = (b: Uint8Array, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);

/** The IPv4 address an IPv6 address stands for (mapped, translated, compatible, NAT64, 6to4), if any. */
export function embeddedIpv4(address: string): string | null {
  const b = ipv6Bytes(address);
  if (!b) return null;
  // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (translated, RFC 2765).
  if (allZero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return v4At(b, 12);
  if (allZero(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return v4At(b, 12);
  // ::a.b.c.d (IPv4-compatible, deprecated). classifyAddress judges :: and ::1 as themselves first.
  if (allZero(b, 0, 12)) return v4At(b, 12);
  // 64:ff9b::/96 (NAT64, RFC 6052).
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && allZero(b, 4, 12)) return v4At(b, 12);
  // 2002:wwxx:yyzz::/48 (6to4, RFC 3056).
  if (b[0] === 0x20 && b[1] === 0x02) return v4At(b, 2);
  return null;
}

/** What kind of address `address` (a literal IPv4 or IPv6 address, no brackets) is. */
export function classifyAddress(address: string): AddressClass {
  const family = isIP(address);
  if (family === 4) return { kind: classifyV4(address) };
  if (family !== 6) return { kind: 'reserved' };
  for (const { kind, list } of V6_LISTS) if (list.check(address, 'ipv6')) return { kind };
  const bare = address.replace(/%.*$/, ''); // a zone id (fe80::1%eth0) says nothing about the address
  const embedded = embeddedIpv4(bare);
  if (embedded) return { kind: classifyV4(embedded), embedded };
  const b = ipv6Bytes(bare);
  // Outside global unicast 2000::/3 nothing is public (discard 100::/64, SRv6 5f00::/16, site-local, …).
  if (!b || (b[0] as number) >> 5 !== 0b001) return { kind: 'reserved' };
  return { kind: 'public' };
}

/** Why Herald will not connect to an address. */
export interface EgressRefusal {
  address: string;
  kind: Exclude<AddressKind, 'public'>;
  embedded?: string;
  /** `destination 10.0.0.5 is a private address, not a public one (allow it with HERALD_EGRESS_ALLOW)`. */
  message: string;
}

const LOOPBACK_NAME = /^(?:.+\.)?localhost\.?$/i;

export class EgressPolicy {
  private readonly allowed = new BlockList();
  /** Whether `localhost` may be named in a URL (the allowance covers 127.0.0.1 or ::1). */
  readonly allowsLoopbackNames: boolean;

  /** `allow`: CIDR blocks (`10.0.0.0/8`, `::1/128`), as config.egressAllow holds them. */
  constructor(readonly allow: readonly string[] = []) {
    for (const block of allow) {
      const [net = '', prefix = ''] = block.split('/');
      const family = isIP(net);
      if (family === 0 || !/^\d{1,3}$/.test(prefix)) throw new Error(`"${block}" is not a CIDR block`);
      this.allowed.addSubnet(net, Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
    }
    this.allowsLoopbackNames = this.inAllowance('127.0.0.1') || this.inAllowance('::1');
  }

  /**
   * Null when Herald may connect to `address`, else why not. `name`: the host name that resolved to
   * it, for the message.
   */
  check(address: string, name?: string): EgressRefusal | null {
    const family = isIP(address);
    if (family === 0) {
      return { address, kind: 'reserved', message: `destination ${address} is not an IP address` };
    }
    const { kind, embedded } = classifyAddress(address);
    if (kind === 'public' || this.inAllowance(address) || (embedded && this.inAllowance(embedded))) return null;
    const what = `${KIND_TEXT[kind]}, not a public one (allow it with HERALD_EGRESS_ALLOW)`;
    const named = name !== undefined && name !== address;
    let message: string;
    if (named && embedded) message = `destination ${name} resolves to ${address}, which carries ${embedded}, ${what}`;
    else if (named) message = `destination ${name} resolves to ${address}, which is ${what}`;
    else if (embedded) message = `destination ${address} carries ${embedded}, which is ${what}`;
    else message = `destination ${address} is ${what}`;
    return { address, kind, ...(embedded ? { embedded } : {}), message };
  }

  allows(address: string): boolean {
    return this.check(address) === null;
  }

  /**
   * What can be known of a URL without resolving a name: null when Herald may try it, else why
   * not. Refused are literal addresses that are not allowed (in any spelling the URL parser
   * accepts: `0x7f000001`, `2130706433`, `[::ffff:7f00:1]` all are 127.0.0.1) and `localhost` names
   * unless the allowance covers loopback. Other names are judged when connecting.
   */
  checkUrl(url: string): string | null {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return 'is not a URL';
    }
    const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
    if (isIP(host)) return this.check(host)?.message ?? null;
    if (LOOPBACK_NAME.test(host) && !this.allowsLoopbackNames) {
      return `destination ${host} is a loopback name, not a public one (allow 127.0.0.1 or ::1 with HERALD_EGRESS_ALLOW)`;
    }
    return null;
  }

  private inAllowance(address: string): boolean {
    return this.allowed.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
  }
}
