import { assertSafeUrl, checkUrlSyntax, parseHostList, policyLookup, UnsafeUrlError, type UnsafeUrlReason, type UrlPolicy } from './ssrf';

type Outcome = 'ok' | UnsafeUrlReason;

const DNS: Record<string, string[]> = {
  'ok.example': ['93.184.216.34'],
  'rebind.example': ['169.254.169.254'],
  'mapped-rebind.example': ['::ffff:169.254.169.254'],
  'aws6.example': ['fd00:ec2::254'],
  'alibaba.example': ['100.100.100.200'],
  'compat-rebind.example': ['::a9fe:a9fe'],
  'nat64-rebind.example': ['64:ff9b::a9fe:a9fe'],
  '6to4-rebind.example': ['2002:a9fe:a9fe::1'],
  'nat64-loop.example': ['64:ff9b::7f00:1'],
  'nat64-public.example': ['64:ff9b::5db8:d822'],
  'multi.example': ['93.184.216.34', '127.0.0.1'],
  'v6.example': ['2606:2800:220:1:248:1893:25c8:1946'],
  'private.example': ['10.1.2.3', 'fd12:3456::1'],
  'linklocal.example': ['fe80::1%eth0'],
  'linklocal4.example': ['169.254.10.20'],
  'loop6.example': ['::1'],
  'zero.example': ['0.0.0.0'],
  localhost: ['127.0.0.1', '::1'],
  'metadata.google.internal': ['169.254.169.254'],
  'mcp.internal.example.com': ['127.0.0.1'],
  'api.corp.example.com': ['192.168.1.10'],
  'corp.example.com': ['192.168.1.11'],
  'home.example': ['192.168.7.7'],
  'evil.example': ['93.184.216.35'],
  'empty.example': [],
};

const lookedUp: string[] = [];

async function fakeLookup(host: string): Promise<{ address: string; family: number }[]> {
  lookedUp.push(host);
  // Like real DNS, a fully qualified name with its root dot is the same name.
  const addresses = DNS[host.replace(/\.$/, '')];
  if (!addresses) {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  }
  return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
}

function policy(production: boolean, allow: string[] = [], deny: string[] = []): UrlPolicy {
  return { production, allow, deny };
}

async function outcomeOf(url: string, p: UrlPolicy): Promise<Outcome> {
  try {
    await assertSafeUrl(url, p, fakeLookup);
    return 'ok';
  } catch (error) {
    if (error instanceof UnsafeUrlError) return error.reason;
    throw error;
  }
}

function syntaxOutcomeOf(url: string, p: UrlPolicy): Outcome {
  try {
    checkUrlSyntax(url, p);
    return 'ok';
  } catch (error) {
    if (error instanceof UnsafeUrlError) return error.reason;
    throw error;
  }
}

async function errorOf(url: string, p: UrlPolicy): Promise<UnsafeUrlError> {
  try {
    await assertSafeUrl(url, p, fakeLookup);
  } catch (error) {
    if (error instanceof UnsafeUrlError) return error;
    throw error;
  }
  throw new Error(`expected ${url} to be refused`);
}

beforeEach(() => {
  lookedUp.length = 0;
});

describe('assertSafeUrl with the default policy', () => {
  // [url, dev/test outcome, production outcome]
  const cases: [string, Outcome, Outcome][] = [
    // scheme, credentials, malformed
    ['https://ok.example/mcp', 'ok', 'ok'],
    ['http://ok.example:8080/sse', 'ok', 'ok'],
    ['HTTPS://OK.EXAMPLE/mcp', 'ok', 'ok'],
    ['ftp://ok.example/', 'scheme', 'scheme'],
    ['file:///etc/passwd', 'scheme', 'scheme'],
    ['javascript:alert(1)', 'scheme', 'scheme'],
    ['ws://ok.example/', 'scheme', 'scheme'],
    ['gopher://127.0.0.1:6379/_INFO', 'scheme', 'scheme'],
    ['https://user:secret@ok.example/', 'credentials', 'credentials'],
    ['https://user@ok.example/', 'credentials', 'credentials'],
    ['https://:secret@ok.example/', 'credentials', 'credentials'],
    ['not a url', 'invalid', 'invalid'],
    ['', 'invalid', 'invalid'],
    ['/relative/path', 'invalid', 'invalid'],
    ['http://./', 'invalid', 'invalid'],
    ['http://[::1/', 'invalid', 'invalid'],

    // cloud metadata: refused everywhere, however it is spelled
    ['http://169.254.169.254/latest/meta-data/', 'metadata', 'metadata'],
    ['http://[fd00:ec2::254]/', 'metadata', 'metadata'],
    ['http://[FD00:EC2:0:0:0:0:0:254]/', 'metadata', 'metadata'],
    ['http://100.100.100.200/latest/meta-data/', 'metadata', 'metadata'],
    ['http://168.63.129.16/machine', 'metadata', 'metadata'],
    ['http://[::ffff:169.254.169.254]/', 'metadata', 'metadata'],
    ['http://[::ffff:a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://[0:0:0:0:0:ffff:a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://2852039166/', 'metadata', 'metadata'], // 169.254.169.254 as one decimal number
    ['http://0xa9.0xfe.0xa9.0xfe/', 'metadata', 'metadata'],
    ['http://0251.0376.0251.0376/', 'metadata', 'metadata'],
    ['http://169.254.169.254./', 'metadata', 'metadata'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata', 'metadata'],
    ['http://METADATA.GOOGLE.INTERNAL./', 'metadata', 'metadata'],
    ['http://metadata/', 'metadata', 'metadata'],
    ['http://rebind.example/', 'metadata', 'metadata'],
    ['http://mapped-rebind.example/', 'metadata', 'metadata'],
    ['http://aws6.example/', 'metadata', 'metadata'],
    ['http://alibaba.example/', 'metadata', 'metadata'],

    // IPv6 spellings that carry the metadata address: a translator or tunnel may deliver them to it
    ['http://[::169.254.169.254]/', 'metadata', 'metadata'], // IPv4-compatible
    ['http://[::a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://[0:0:0:0:0:0:a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://[::ffff:0:a9fe:a9fe]/', 'metadata', 'metadata'], // IPv4-translated (SIIT)
    ['http://[64:ff9b::a9fe:a9fe]/', 'metadata', 'metadata'], // NAT64 well-known prefix
    ['http://[64:ff9b::169.254.169.254]/', 'metadata', 'metadata'],
    ['http://[64:FF9B:0:0:0:0:A9FE:A9FE]/', 'metadata', 'metadata'],
    ['http://[64:ff9b::6464:64c8]/', 'metadata', 'metadata'], // 100.100.100.200
    ['http://[64:ff9b:1::a9fe:a9fe]/', 'metadata', 'metadata'], // NAT64 local-use, /96
    ['http://[64:ff9b:1:a9fe:a9:fe00::]/', 'metadata', 'metadata'], // NAT64 local-use, /48
    ['http://[64:ff9b:1:ffa9:a9:fea9:fe00:0]/', 'metadata', 'metadata'], // NAT64 local-use, /56
    ['http://[64:ff9b:1:ffff:a9:fea9:fe00:0]/', 'metadata', 'metadata'], // NAT64 local-use, /64
    ['http://[2002:a9fe:a9fe::1]/', 'metadata', 'metadata'], // 6to4
    ['http://[2001:0:a9fe:a9fe::1]/', 'metadata', 'metadata'], // Teredo server
    ['http://[2001:0:4136:e378:8000:63bf:5601:5601]/', 'metadata', 'metadata'], // Teredo client (stored inverted)
    ['http://compat-rebind.example/', 'metadata', 'metadata'],
    ['http://nat64-rebind.example/', 'metadata', 'metadata'],
    ['http://6to4-rebind.example/', 'metadata', 'metadata'],

    // link-local: refused everywhere
    ['http://169.254.1.1/', 'link-local', 'link-local'],
    ['http://[fe80::1]/', 'link-local', 'link-local'],
    ['http://[FEBF::1]/', 'link-local', 'link-local'],
    ['http://[::ffff:169.254.0.1]/', 'link-local', 'link-local'],
    ['http://linklocal.example/', 'link-local', 'link-local'],
    ['http://linklocal4.example/', 'link-local', 'link-local'],
    ['http://[::169.254.1.1]/', 'link-local', 'link-local'],
    ['http://[64:ff9b::a9fe:101]/', 'link-local', 'link-local'],
    ['http://[2002:a9fe:101::]/', 'link-local', 'link-local'],

    // loopback: allowed in dev/test only
    ['http://localhost:3000/mcp', 'ok', 'loopback'],
    ['http://LOCALHOST./', 'ok', 'loopback'],
    ['http://api.localhost/', 'unresolvable', 'loopback'],
    ['http://127.0.0.1:8080/', 'ok', 'loopback'],
    ['http://127.1/', 'ok', 'loopback'],
    ['http://0x7f000001/', 'ok', 'loopback'],
    ['http://127.255.255.254/', 'ok', 'loopback'],
    ['http://[::1]:3000/', 'ok', 'loopback'],
    ['http://[0:0:0:0:0:0:0:1]/', 'ok', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'ok', 'loopback'],
    ['http://loop6.example/', 'ok', 'loopback'],
    ['http://multi.example/', 'ok', 'loopback'], // one bad address is enough
    ['http://[::127.0.0.1]/', 'ok', 'loopback'],
    ['http://[64:ff9b::7f00:1]/', 'ok', 'loopback'],
    ['http://[2002:7f00:1::]/', 'ok', 'loopback'],
    ['http://nat64-loop.example/', 'ok', 'loopback'],

    // unspecified: allowed in dev/test only
    ['http://0.0.0.0:3000/', 'ok', 'unspecified'],
    ['http://0/', 'ok', 'unspecified'],
    ['http://[::]/', 'ok', 'unspecified'],
    ['http://[::ffff:0.0.0.0]/', 'ok', 'unspecified'],
    ['http://zero.example/', 'ok', 'unspecified'],

    // private networks are allowed by default
    ['http://10.0.0.5/', 'ok', 'ok'],
    ['http://172.16.0.1/', 'ok', 'ok'],
    ['http://192.168.1.1/', 'ok', 'ok'],
    ['http://[fd12:3456::1]/', 'ok', 'ok'],
    ['http://private.example/', 'ok', 'ok'],

    // public and near-miss addresses
    ['http://93.184.216.34/', 'ok', 'ok'],
    ['http://[2606:2800:220:1:248:1893:25c8:1946]/', 'ok', 'ok'],
    ['http://v6.example/', 'ok', 'ok'],
    ['http://169.253.255.255/', 'ok', 'ok'],
    ['http://169.255.0.1/', 'ok', 'ok'],
    ['http://128.0.0.1/', 'ok', 'ok'],
    ['http://[fec0::1]/', 'ok', 'ok'],
    ['http://[::2]/', 'ok', 'ok'], // ::/104 keeps its IPv6 meaning
    ['http://[::808:808]/', 'ok', 'ok'],
    ['http://[64:ff9b::808:808]/', 'ok', 'ok'],
    ['http://[64:ff9b:1::808:808]/', 'ok', 'ok'],
    ['http://[64:ff9b:2::a9fe:a9fe]/', 'ok', 'ok'], // outside both NAT64 prefixes
    ['http://[2002:808:808::1]/', 'ok', 'ok'],
    ['http://[2001:0:808:808::f7f7:f7f7]/', 'ok', 'ok'],
    ['http://[2001:db8::a9fe:a9fe]/', 'ok', 'ok'], // 2001:db8::/32 is not Teredo
    ['http://nat64-public.example/', 'ok', 'ok'],

    // DNS failures
    ['http://missing.example/', 'unresolvable', 'unresolvable'],
    ['http://empty.example/', 'unresolvable', 'unresolvable'],
  ];

  it.each(cases)('%s → dev %s, production %s', async (url, dev, production) => {
    expect(await outcomeOf(url, policy(false))).toBe(dev);
    expect(await outcomeOf(url, policy(true))).toBe(production);
  });
});

describe('checkUrlSyntax (no DNS)', () => {
  // [url, dev/test outcome, production outcome]
  const cases: [string, Outcome, Outcome][] = [
    ['https://ok.example/', 'ok', 'ok'],
    ['https://rebind.example/', 'ok', 'ok'], // only the connect-time check can see where a name points
    ['https://missing.example/', 'ok', 'ok'],
    ['mailto:a@b.example', 'scheme', 'scheme'],
    ['https://u:p@ok.example/', 'credentials', 'credentials'],
    ['http://169.254.169.254/', 'metadata', 'metadata'],
    ['http://metadata.google.internal./', 'metadata', 'metadata'],
    ['http://[::ffff:a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://[::169.254.169.254]/', 'metadata', 'metadata'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'metadata', 'metadata'],
    ['http://[fe80::abcd]/', 'link-local', 'link-local'],
    ['http://LOCALHOST./', 'ok', 'loopback'],
    ['http://foo.localhost/', 'ok', 'loopback'],
    ['http://127.0.0.1/', 'ok', 'loopback'],
    ['http://[::1]/', 'ok', 'loopback'],
    ['http://0.0.0.0/', 'ok', 'unspecified'],
    ['http://10.1.1.1/', 'ok', 'ok'],
  ];

  it.each(cases)('%s → dev %s, production %s', (url, dev, production) => {
    expect(syntaxOutcomeOf(url, policy(false))).toBe(dev);
    expect(syntaxOutcomeOf(url, policy(true))).toBe(production);
  });

  it('returns the parsed URL', () => {
    const url = checkUrlSyntax('  https://MCP.Example.com:8443/sse?x=1  ', policy(true));
    expect(url).toBeInstanceOf(URL);
    expect(url.href).toBe('https://mcp.example.com:8443/sse?x=1');
  });
});

describe('allow and deny lists', () => {
  const ALLOW = ['10.0.0.0/8', 'mcp.internal.example.com', '*.corp.example.com', '127.0.0.2', '[fe80::]/64', '169.254.0.0/16'];
  const DENY = ['192.168.0.0/16', 'evil.example', '*.bad.example', '10.6.6.0/24', 'fd00::/8'];

  // [url, allow, deny, production, outcome]
  const cases: [string, string[], string[], boolean, Outcome][] = [
    // deny by name, wildcard and CIDR (literal and resolved)
    ['https://evil.example/', [], DENY, false, 'denied'],
    ['https://EVIL.EXAMPLE./', [], DENY, true, 'denied'],
    ['https://sub.evil.example/', [], DENY, true, 'unresolvable'], // exact names do not cover subdomains
    ['https://x.bad.example/', [], DENY, true, 'denied'],
    ['https://a.b.bad.example/', [], DENY, true, 'denied'],
    ['https://bad.example/', [], DENY, true, 'unresolvable'], // the wildcard covers subdomains only
    ['https://192.168.1.1/', [], DENY, false, 'denied'],
    ['https://[::ffff:192.168.1.1]/', [], DENY, true, 'denied'],
    ['https://home.example/', [], DENY, true, 'denied'],
    ['https://[fd12:3456::1]/', [], DENY, true, 'denied'],
    ['https://private.example/', [], DENY, true, 'denied'], // 10.1.2.3 is fine, fd12:3456::1 is not
    ['https://10.1.2.3/', [], DENY, true, 'ok'],
    ['https://[64:ff9b::c0a8:101]/', [], DENY, true, 'denied'], // NAT64 of 192.168.1.1
    ['https://[2002:a06:606::]/', [], DENY, true, 'denied'], // 6to4 of 10.6.6.6
    ['https://[64:ff9b::a06:606]/', [], ['64:ff9b::/96'], true, 'denied'], // IPv6 entries match the IPv6 form
    ['https://[64:ff9b::a9fe:101]/', ['64:ff9b::/96'], [], true, 'link-local'], // allowing the prefix does not allow what it carries
    ['https://ok.example/', [], DENY, true, 'ok'],

    // allow by CIDR, name and wildcard skips the default rules
    ['http://10.9.9.9/', ALLOW, [], true, 'ok'],
    ['http://127.0.0.2/', ALLOW, [], true, 'ok'],
    ['http://127.0.0.1/', ALLOW, [], true, 'loopback'],
    ['http://[fe80::1]/', ALLOW, [], true, 'ok'],
    ['http://[fe80:0:0:1::1]/', ALLOW, [], true, 'link-local'],
    ['http://169.254.10.20/', ALLOW, [], false, 'ok'],
    ['http://mcp.internal.example.com/', ALLOW, [], true, 'ok'], // resolves to 127.0.0.1 but is allowed by name
    ['http://MCP.INTERNAL.EXAMPLE.COM./', ALLOW, [], true, 'ok'],
    ['http://api.corp.example.com/', ALLOW, [], true, 'ok'],
    ['http://localhost/', ['localhost'], [], true, 'ok'],
    ['http://localhost/', ['127.0.0.0/8', '::1'], [], true, 'loopback'], // CIDRs do not lift the name rule
    ['http://loop6.example/', ['::1'], [], true, 'ok'],
    ['http://loop6.example/', ['::/0'], [], true, 'ok'],
    ['http://127.0.0.1/', ['::/0'], [], true, 'loopback'], // an IPv6 range does not cover IPv4
    ['http://[::ffff:127.0.0.1]/', ['127.0.0.0/8'], [], true, 'ok'],

    // metadata cannot be allowed
    ['http://169.254.169.254/', ALLOW, [], false, 'metadata'],
    ['http://169.254.169.254/', ['169.254.169.254'], [], false, 'metadata'],
    ['http://metadata.google.internal/', ['metadata.google.internal'], [], false, 'metadata'],
    ['http://rebind.example/', ['rebind.example'], [], false, 'metadata'],
    ['http://100.100.100.200/', ['0.0.0.0/0'], [], false, 'metadata'],

    // scheme and credentials still apply to allowed hosts
    ['ftp://10.1.1.1/', ALLOW, [], true, 'scheme'],
    ['http://u:p@10.1.1.1/', ALLOW, [], true, 'credentials'],

    // deny wins over allow
    ['http://10.6.6.6/', ALLOW, DENY, true, 'denied'],
    ['http://evil.example/', ['evil.example'], DENY, true, 'denied'],
    ['http://x.bad.example/', ['*.bad.example'], DENY, true, 'denied'],
    ['http://api.corp.example.com/', ALLOW, DENY, true, 'denied'], // allowed by name, resolves into a denied range
    ['http://corp.example.com/', ALLOW, DENY, true, 'denied'],
  ];

  it.each(cases)('%s allow=%j deny=%j production=%s → %s', async (url, allow, deny, production, expected) => {
    expect(await outcomeOf(url, policy(production, allow, deny))).toBe(expected);
  });

  it('accepts list entries that were not lower-cased or trimmed', async () => {
    expect(await outcomeOf('http://evil.example/', policy(true, [], [' Evil.Example ']))).toBe('denied');
  });

  it('throws for an invalid entry in a policy built by hand', async () => {
    await expect(assertSafeUrl('https://ok.example/', policy(true, [], ['10.0.0.0/33']), fakeLookup)).rejects.toThrow(
      /invalid host list entry "10\.0\.0\.0\/33"/,
    );
  });
});

describe('messages', () => {
  const prod = policy(true);
  const dev = policy(false);

  it.each([
    ['http://169.254.169.254/', dev, 'URL host 169.254.169.254 is a cloud metadata address'],
    ['http://[::ffff:169.254.169.254]/', dev, 'URL host [::ffff:a9fe:a9fe] (169.254.169.254) is a cloud metadata address'],
    ['http://metadata.google.internal/', dev, 'URL host metadata.google.internal is a cloud metadata address'],
    ['http://rebind.example/', dev, 'URL host rebind.example resolves to a cloud metadata address'],
    ['http://[64:ff9b::a9fe:a9fe]/', dev, 'URL host [64:ff9b::a9fe:a9fe] (169.254.169.254) is a cloud metadata address'],
    ['http://[::169.254.169.254]/', dev, 'URL host [::a9fe:a9fe] (169.254.169.254) is a cloud metadata address'],
    ['http://nat64-rebind.example/', dev, 'URL host nat64-rebind.example resolves to a cloud metadata address'],
    ['http://[fe80::1]/', dev, 'URL host [fe80::1] is a link-local address'],
    ['http://linklocal4.example/', dev, 'URL host linklocal4.example resolves to a link-local address'],
    ['http://127.0.0.1/', prod, 'URL host 127.0.0.1 is a loopback address, which is refused in production'],
    ['http://[::1]/', prod, 'URL host [::1] is a loopback address, which is refused in production'],
    ['http://LOCALHOST./', prod, 'URL host localhost. is a loopback name, which is refused in production'],
    ['http://multi.example/', prod, 'URL host multi.example resolves to a loopback address, which is refused in production'],
    ['http://0.0.0.0/', prod, 'URL host 0.0.0.0 is an unspecified address, which is refused in production'],
    ['http://missing.example/', prod, 'URL host missing.example could not be resolved (ENOTFOUND)'],
    ['ftp://ok.example/', prod, 'only http and https URLs are allowed (got ftp)'],
    ['https://me:hunter2@ok.example/', prod, 'URL must not contain a user name or password; the platform sends its own credentials'],
    ['https://me:hunter2@[bad/', prod, 'URL is not a valid absolute URL'],
    ['http://192.168.4.4/', policy(true, [], ['192.168.0.0/16']), 'URL host 192.168.4.4 is refused by the deny list'],
    [
      'http://home.example/',
      policy(true, [], ['192.168.0.0/16']),
      'URL host home.example resolves to an address that is refused by the deny list',
    ],
    ['http://x.bad.example/', policy(true, [], ['*.bad.example']), 'URL host x.bad.example is refused by the deny list'],
  ])('%s', async (url, p, message) => {
    const error = await errorOf(url, p);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('UnsafeUrlError');
    expect(error.message).toBe(message);
  });

  // The caller's message names the rule; where a name pointed and which entry matched is for the logs only.
  it.each([
    ['http://rebind.example/', dev, 'URL host rebind.example resolves to cloud metadata address 169.254.169.254'],
    [
      'http://nat64-rebind.example/',
      dev,
      'URL host nat64-rebind.example resolves to cloud metadata address 169.254.169.254 (carried in 64:ff9b::a9fe:a9fe)',
    ],
    ['http://multi.example/', prod, 'URL host multi.example resolves to loopback address 127.0.0.1, which is refused in production'],
    ['http://192.168.4.4/', policy(true, [], ['192.168.0.0/16']), 'URL host 192.168.4.4 is refused by the deny list (192.168.0.0/16)'],
    [
      'http://home.example/',
      policy(true, [], ['192.168.0.0/16']),
      'URL host home.example resolves to 192.168.7.7, which is refused by the deny list (192.168.0.0/16)',
    ],
    ['http://x.bad.example/', policy(true, [], ['*.bad.example']), 'URL host x.bad.example is refused by the deny list (*.bad.example)'],
    ['http://127.0.0.1/', prod, 'URL host 127.0.0.1 is a loopback address, which is refused in production'],
  ])('%s: detail for the logs', async (url, p, detail) => {
    const error = await errorOf(url, p);
    expect(error.detail).toBe(detail);
    expect(error.message).not.toMatch(
      /192\.168\.7\.7|192\.168\.0\.0\/16|\*\.bad|127\.0\.0\.1.*resolves|resolves.*127\.0\.0\.1|169\.254\.169\.254$/,
    );
  });

  it('never echoes credentials', async () => {
    for (const url of ['https://me:hunter2@ok.example/', 'https://me:hunter2@[bad/', 'ftp://me:hunter2@ok.example/']) {
      expect((await errorOf(url, prod)).message).not.toContain('hunter2');
    }
  });

  it('reports a lookup failure without a code', async () => {
    const failing = async (): Promise<{ address: string; family: number }[]> => {
      throw new Error('boom');
    };
    await expect(assertSafeUrl('http://ok.example/', prod, failing)).rejects.toMatchObject({
      reason: 'unresolvable',
      message: 'URL host ok.example could not be resolved',
    });
  });
});

describe('DNS use', () => {
  it('skips DNS for literal IPs and resolves names as written', async () => {
    await assertSafeUrl('http://10.0.0.1/', policy(true), fakeLookup);
    await assertSafeUrl('http://[2606:2800:220:1:248:1893:25c8:1946]/', policy(true), fakeLookup);
    await assertSafeUrl('http://LOCALHOST./', policy(false), fakeLookup);
    await assertSafeUrl('https://OK.example/', policy(true), fakeLookup);
    expect(lookedUp).toEqual(['localhost.', 'ok.example']);
  });

  it('does not resolve names refused on their own', async () => {
    await expect(assertSafeUrl('http://localhost/', policy(true), fakeLookup)).rejects.toMatchObject({ reason: 'loopback' });
    await expect(assertSafeUrl('http://evil.example/', policy(true, [], ['evil.example']), fakeLookup)).rejects.toMatchObject({
      reason: 'denied',
    });
    expect(lookedUp).toEqual([]);
  });

  it('uses the system resolver by default', async () => {
    await expect(assertSafeUrl('http://127.0.0.1/', policy(true))).rejects.toMatchObject({ reason: 'loopback' });
    const url = await assertSafeUrl('http://localhost:3000/mcp', policy(false));
    expect(url.port).toBe('3000');
  });
});

describe("policyLookup (the sockets' own lookup)", () => {
  const both = async () => [
    { address: '93.184.215.14', family: 4 },
    { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 },
  ];
  const ask = (lookup: ReturnType<typeof policyLookup>, host: string, options: { all?: boolean; family?: number }) =>
    new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) =>
      lookup(host, options as never, (error, address, family) => resolve({ error, address, family })),
    );

  it('answers every address, one address or one family, as the socket asks', async () => {
    const lookup = policyLookup(policy(true), both);
    expect((await ask(lookup, 'ok.example', { all: true })).address).toEqual(await both());
    expect(await ask(lookup, 'ok.example', {})).toMatchObject({ error: null, address: '93.184.215.14', family: 4 });
    expect(await ask(lookup, 'ok.example', { family: 6 })).toMatchObject({
      error: null,
      address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c',
      family: 6,
    });
  });

  it("fails the socket with the policy's refusal, for the name or for any address", async () => {
    expect((await ask(policyLookup(policy(true), both), 'localhost', {})).error).toMatchObject({ reason: 'loopback' });
    const mixed = policyLookup(policy(true), async () => [
      { address: '93.184.215.14', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ]);
    expect((await ask(mixed, 'ok.example', { all: true })).error).toBeInstanceOf(UnsafeUrlError);
  });

  it('passes a resolver failure through, and says ENOTFOUND when the family asked for has no address', async () => {
    const missing = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' });
    expect(
      (
        await ask(
          policyLookup(policy(true), () => Promise.reject(missing)),
          'nowhere.example',
          {},
        )
      ).error,
    ).toBe(missing);
    const v4only = policyLookup(policy(true), async () => [{ address: '93.184.215.14', family: 4 }]);
    expect((await ask(v4only, 'ok.example', { family: 6 })).error).toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('parseHostList', () => {
  it.each([
    [undefined, []],
    ['', []],
    [' , \n ', []],
    ['10.0.0.0/8', ['10.0.0.0/8']],
    ['10.0.0.0/8, MCP.Internal.Example.com  *.Corp.Example.com', ['10.0.0.0/8', 'mcp.internal.example.com', '*.corp.example.com']],
    ['a.example,,b.example\n\tc.example', ['a.example', 'b.example', 'c.example']],
    ['::1 fd00::/8 [fe80::]/10 [::1] 127.0.0.1', ['::1', 'fd00::/8', '[fe80::]/10', '[::1]', '127.0.0.1']],
    ['0.0.0.0/0 ::/0 localhost. bücher.example', ['0.0.0.0/0', '::/0', 'localhost.', 'bücher.example']],
  ])('%j → %j', (input, expected) => {
    expect(parseHostList(input)).toEqual(expected);
  });

  it.each([
    ['10.0.0.0/33', /"10\.0\.0\.0\/33".*0 to 32/],
    ['fd00::/129', /"fd00::\/129".*0 to 128/],
    ['10.0.0.0/', /"10\.0\.0\.0\/"/],
    ['10.0.0.0/8x', /"10\.0\.0\.0\/8x"/],
    ['10.0.0.0/-1', /"10\.0\.0\.0\/-1"/],
    ['300.0.0.0/8', /"300\.0\.0\.0\/8".*not an IP address/],
    ['example.com/24', /"example\.com\/24".*not an IP address/],
    ['::ffff:10.0.0.0/104', /"::ffff:10\.0\.0\.0\/104".*IPv4 form/],
    ['https://evil.example', /"https:\/\/evil\.example"/],
    ['evil.example:8080', /"evil\.example:8080"/],
    ['evil.example/path', /"evil\.example\/path"/],
    ['*', /"\*"/],
    ['*evil.example', /"\*evil\.example"/],
    ['a.*.example', /"a\.\*\.example"/],
    ['bad..example', /"bad\.\.example"/],
    ['-bad.example', /"-bad\.example"/],
    ['10.0.0', /"10\.0\.0".*not a valid IP address/],
    ['10.0.0.0.1', /"10\.0\.0\.0\.1"/],
  ])('rejects %s naming the entry', (entry, message) => {
    expect(() => parseHostList(`ok.example, ${entry}, 10.0.0.0/8`)).toThrow(message);
  });
});
