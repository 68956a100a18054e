import { BlockList, isIP } from 'node:net';

/**
 * IP addresses as the URL policy (lib/ssrf.ts) sees them: one canonical spelling per address,
 * the IPv4 addresses an IPv6 address carries, and the well-known ranges the policy refuses.
 */

export type Family = 'ipv4' | 'ipv6';

export interface Ip {
  address: string;
  family: Family;
  /**
   * IPv4 addresses an IPv6 address carries and that a translator or tunnel may deliver to
   * (IPv4-compatible, NAT64, 6to4, Teredo): each must pass the rules too.
   */
  embedded?: Ip[];
  /** For an embedded address: the IPv6 address it came from. */
  via?: string;
}

/** The eight 16-bit words of an IPv6 address in the WHATWG canonical form (hex words, at most one "::"). */
function ipv6Words(canonical: string): number[] {
  const [head = '', tail] = canonical.split('::');
  const words = (part: string) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const high = words(head);
  const low = tail === undefined ? [] : words(tail);
  return [...high, ...new Array<number>(8 - high.length - low.length).fill(0), ...low];
}

function ipv4Of(bytes: number[], via: string): Ip {
  return { address: bytes.join('.'), family: 'ipv4', via };
}

/**
 * IPv4 addresses embedded in an IPv6 address by a translation or tunnelling scheme. Traffic to
 * such an address may reach that IPv4 host, so a metadata or link-local address must not slip
 * through in IPv6 spelling (`[::169.254.169.254]`, `[64:ff9b::a9fe:a9fe]`).
 */
function embeddedIpv4(words: number[], via: string): Ip[] {
  const bytes = words.flatMap((w) => [w >> 8, w & 255]);
  const zero = (from: number, to: number) => words.slice(from, to).every((w) => w === 0);
  const last32 = bytes.slice(12, 16);
  // IPv4-compatible ::a.b.c.d (RFC 4291, deprecated); ::/104 is left alone so :: and ::1 keep their IPv6 meaning.
  if (zero(0, 6) && bytes[12] !== 0) return [ipv4Of(last32, via)];
  // IPv4-translated ::ffff:0:a.b.c.d (SIIT, RFC 2765).
  if (zero(0, 4) && words[4] === 0xffff && words[5] === 0) return [ipv4Of(last32, via)];
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
  if (words[0] === 0x64 && words[1] === 0xff9b && zero(2, 6)) return [ipv4Of(last32, via)];
  if (words[0] === 0x64 && words[1] === 0xff9b && words[2] === 1) {
    // NAT64 local-use 64:ff9b:1::/48 (RFC 8215): the operator picks a prefix of 48 to 96 bits,
    // which moves the IPv4 bits (RFC 6052 section 2.2, skipping the "u" octet 8); every reading must pass.
    // The shorter readings of a /96-style address give 0.x.x.x, which no translator delivers to: skipped.
    const shorter = [
      [bytes[6]!, bytes[7]!, bytes[9]!, bytes[10]!],
      [bytes[7]!, bytes[9]!, bytes[10]!, bytes[11]!],
      [bytes[9]!, bytes[10]!, bytes[11]!, bytes[12]!],
    ].filter((b) => b[0] !== 0);
    return [...shorter, last32].map((b) => ipv4Of(b, via));
  }
  // 6to4 2002:a.b.c.d::/48 (RFC 3056): the relay tunnels to that IPv4 host.
  if (words[0] === 0x2002) return [ipv4Of(bytes.slice(2, 6), via)];
  // Teredo 2001:0::/32 (RFC 4380): the server's IPv4, and the client's IPv4 stored inverted.
  if (words[0] === 0x2001 && words[1] === 0) {
    return [
      ipv4Of(bytes.slice(4, 8), via),
      ipv4Of(
        last32.map((b) => b ^ 255),
        via,
      ),
    ];
  }
  return [];
}

/** Parses an IP literal (optionally bracketed or with a zone id) into a canonical form; IPv4-mapped IPv6 becomes IPv4. */
export function toIp(value: string): Ip | undefined {
  let text = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  const kind = isIP(text);
  if (kind === 4) return { address: text, family: 'ipv4' };
  if (kind !== 6) return undefined;
  let canonical = text.toLowerCase();
  try {
    // The WHATWG serializer gives one spelling per address, so ::ffff:169.254.169.254 and
    // 0:0:0:0:0:ffff:a9fe:a9fe both become ::ffff:a9fe:a9fe and are recognised below.
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    // Unreachable in practice (isIP accepted it); the lower-cased text is still a valid BlockList input.
  }
  const words = ipv6Words(canonical);
  if (words.length === 8 && words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    // Traffic to a mapped address is IPv4 traffic, so it must face the IPv4 rules (and only those).
    return { address: `${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`, family: 'ipv4' };
  }
  const embedded = words.length === 8 ? embeddedIpv4(words, canonical) : [];
  return { address: canonical, family: 'ipv6', ...(embedded.length ? { embedded } : {}) };
}

export function blockListOf(ranges: [string, number, Family][]): BlockList {
  const list = new BlockList();
  for (const [network, prefix, family] of ranges) list.addSubnet(network, prefix, family);
  return list;
}

export const METADATA_ADDRESSES = blockListOf([
  ['169.254.169.254', 32, 'ipv4'], // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
  ['fd00:ec2::254', 128, 'ipv6'], // AWS IMDS over IPv6
  ['100.100.100.200', 32, 'ipv4'], // Alibaba Cloud
  ['168.63.129.16', 32, 'ipv4'], // Azure WireServer: outside link-local, yet hands out VM extension config
]);
export const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata']);
export const LINK_LOCAL = blockListOf([
  ['169.254.0.0', 16, 'ipv4'],
  ['fe80::', 10, 'ipv6'],
]);
export const LOOPBACK = blockListOf([
  ['127.0.0.0', 8, 'ipv4'],
  ['::1', 128, 'ipv6'],
]);
// Linux routes connections to 0.0.0.0 (and historically the rest of 0/8) to the local host.
export const UNSPECIFIED = blockListOf([
  ['0.0.0.0', 8, 'ipv4'],
  ['::', 128, 'ipv6'],
]);

export function inList(list: BlockList, ip: Ip): boolean {
  return list.check(ip.address, ip.family);
}
