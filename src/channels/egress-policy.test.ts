import { describe, expect, it } from 'vitest';
import { type AddressKind, classifyAddress, EgressPolicy, embeddedIpv4 } from './egress-policy.ts';

/** [address, kind, the IPv4 address it was judged by] */
const TABLE: [string, AddressKind, string?][] = [
  // IPv4
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.5', 'private'],
  ['10.255.255.255', 'private'],
  ['100.63.255.255', 'public'],
  ['100.64.0.1', 'shared'],
  ['100.127.255.255', 'shared'],
  ['100.128.0.0', 'public'],
  ['126.255.255.255', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['128.0.0.0', 'public'],
  ['169.254.169.254', 'link-local'],
  ['169.254.0.1', 'link-local'],
  ['172.15.255.255', 'public'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', 'public'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'documentation'],
  ['192.88.99.1', 'reserved'],
  ['192.168.1.1', 'private'],
  ['192.169.0.0', 'public'],
  ['198.17.255.255', 'public'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  ['198.20.0.0', 'public'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['223.255.255.255', 'public'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['1.1.1.1', 'public'],
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
  // IPv6
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback', '127.0.0.1'],
  ['::ffff:7f00:1', 'loopback', '127.0.0.1'],
  ['::ffff:a9fe:a9fe', 'link-local', '169.254.169.254'],
  ['::ffff:8.8.8.8', 'public', '8.8.8.8'],
  ['::ffff:0:10.0.0.1', 'private', '10.0.0.1'],
  ['::127.0.0.1', 'loopback', '127.0.0.1'],
  ['::a9fe:a9fe', 'link-local', '169.254.169.254'],
  ['64:ff9b::10.0.0.1', 'private', '10.0.0.1'],
  ['64:ff9b::7f00:1', 'loopback', '127.0.0.1'],
  ['64:ff9b::8.8.8.8', 'public', '8.8.8.8'],
  ['64:ff9b:1::1', 'reserved'],
  ['2002:7f00:1::', 'loopback', '127.0.0.1'],
  ['2002:a9fe:a9fe::1', 'link-local', '169.254.169.254'],
  ['2002:c0a8:101:1::1', 'private', '192.168.1.1'],
  ['2002:808:808::1', 'public', '8.8.8.8'],
  ['fc00::1', 'private'],
  ['fd12:3456:789a::1', 'private'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'reserved'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation'],
  ['2001::1', 'reserved'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
  ['100::1', 'reserved'],
  ['5f00::1', 'reserved'],
  ['1234::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['2606:4700:4700::1111', 'public'],
  ['2a00:1450:4001:80b::200e', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['3ffe:ffff::1', 'public'],
];

describe('classifyAddress', () => {
  it.each(TABLE)('%s is %s', (address, kind, embedded) => {
    expect(classifyAddress(address)).toEqual(embedded ? { kind, embedded } : { kind });
  });

  it('judges what is not an address as reserved', () => {
    expect(classifyAddress('example.com').kind).toBe('reserved');
  });
});

describe('embeddedIpv4', () => {
  it.each([
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['::ffff:0:1.2.3.4', '1.2.3.4'],
    ['::1.2.3.4', '1.2.3.4'],
    ['64:ff9b::1.2.3.4', '1.2.3.4'],
    ['2002:102:304:abcd::1', '1.2.3.4'],
    ['2606:4700::1111', null],
    ['fe80::1', null],
  ])('%s carries %s', (address, v4) => {
    expect(embeddedIpv4(address)).toBe(v4);
  });
});

describe('EgressPolicy.check', () => {
  it('refuses every non-public kind by default, naming the address and the setting', () => {
    const policy = new EgressPolicy();
    for (const [address, kind] of TABLE) {
      const refusal = policy.check(address);
      if (kind === 'public') {
        expect(refusal, address).toBeNull();
        continue;
      }
      expect(refusal, address).toMatchObject({ address, kind });
      expect(refusal?.message).toContain(address);
      expect(refusal?.message).toContain('HERALD_EGRESS_ALLOW');
    }
  });

  it('names the host name and the address it resolved to, and the IPv4 address a form carries', () => {
    const policy = new EgressPolicy();
    expect(policy.check('10.0.0.5')?.message).toBe(
      'destination 10.0.0.5 is a private address, not a public one (allow it with HERALD_EGRESS_ALLOW)',
    );
    expect(policy.check('127.0.0.1', 'hooks.example.com')?.message).toMatch(
      /^destination hooks\.example\.com resolves to 127\.0\.0\.1, which is a loopback address/,
    );
    expect(policy.check('::ffff:a9fe:a9fe')?.message).toMatch(/carries 169\.254\.169\.254, which is a link-local/);
  });

  it('lets through what the allowance covers, and only that', () => {
    const policy = new EgressPolicy(['10.0.0.0/8', '127.0.0.2/32', 'fd00::/8']);
    expect(policy.allows('10.1.2.3')).toBe(true);
    expect(policy.allows('127.0.0.2')).toBe(true);
    expect(policy.allows('fd12::1')).toBe(true);
    expect(policy.allows('127.0.0.1')).toBe(false);
    expect(policy.allows('172.16.0.1')).toBe(false);
    expect(policy.allows('fc00::1')).toBe(false);
    expect(policy.allows('169.254.169.254')).toBe(false);
    // The same destination in IPv6 spellings.
    expect(policy.allows('::ffff:10.1.2.3')).toBe(true);
    expect(policy.allows('64:ff9b::a01:203')).toBe(true);
    expect(policy.allows('2002:a01:203::1')).toBe(true);
    expect(policy.allows('::ffff:127.0.0.1')).toBe(false);
  });

  it('knows when the allowance covers loopback (then localhost may be named)', () => {
    expect(new EgressPolicy().allowsLoopbackNames).toBe(false);
    expect(new EgressPolicy(['10.0.0.0/8']).allowsLoopbackNames).toBe(false);
    expect(new EgressPolicy(['127.0.0.0/8']).allowsLoopbackNames).toBe(true);
    expect(new EgressPolicy(['::1/128']).allowsLoopbackNames).toBe(true);
  });

  it('rejects an allowance that is not CIDR blocks', () => {
    expect(() => new EgressPolicy(['localhost'])).toThrow(/CIDR/);
  });
});

describe('EgressPolicy.checkUrl', () => {
  const strict = new EgressPolicy();
  const loopbackAllowed = new EgressPolicy(['127.0.0.0/8', '::1/128']);

  it.each([
    'http://127.0.0.1/hook',
    'http://0x7f000001/hook',
    'http://2130706433/hook',
    'http://0177.0.0.1/hook',
    'http://127.1/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://[::ffff:7f00:1]/hook',
    'https://[64:ff9b::7f00:1]:8443/hook',
  ])('refuses %s: the URL parser reads it as 127.0.0.1', (url) => {
    expect(strict.checkUrl(url)).toMatch(/127\.0\.0\.1.*loopback.*HERALD_EGRESS_ALLOW/);
    expect(loopbackAllowed.checkUrl(url)).toBeNull();
  });

  it.each([
    'http://[::1]/',
    'http://[::]/',
    'http://0.0.0.0/',
    'http://0/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::ffff:169.254.169.254]/',
    'http://10.0.0.5:8080/',
    'http://100.64.0.1/',
    'http://192.168.1.1/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://[ff02::1]/',
    'http://255.255.255.255/',
    'http://224.0.0.1/',
  ])('refuses %s', (url) => {
    expect(strict.checkUrl(url)).toMatch(/HERALD_EGRESS_ALLOW/);
  });

  it.each(['http://localhost/', 'http://LOCALHOST:8080/', 'http://localhost./', 'http://api.localhost/'])(
    'refuses the loopback name in %s unless loopback is allowed',
    (url) => {
      expect(strict.checkUrl(url)).toMatch(/loopback name.*HERALD_EGRESS_ALLOW/);
      expect(loopbackAllowed.checkUrl(url)).toBeNull();
      expect(new EgressPolicy(['10.0.0.0/8']).checkUrl(url)).not.toBeNull();
    },
  );

  it.each([
    'https://example.com/hook',
    'http://localhost.example.com/',
    'http://mylocalhost/',
    'http://8.8.8.8/',
    'http://[2606:4700:4700::1111]/',
  ])('accepts %s (names are judged when connecting)', (url) => {
    expect(strict.checkUrl(url)).toBeNull();
  });
});
