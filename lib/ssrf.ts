import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type BlockList, type LookupFunction } from 'node:net';
import { domainToASCII } from 'node:url';
import {
  blockListOf,
  inList,
  LINK_LOCAL,
  LOOPBACK,
  METADATA_ADDRESSES,
  METADATA_NAMES,
  toIp,
  UNSPECIFIED,
  type Family,
  type Ip,
} from './ssrf-address';

export interface UrlPolicy {
  /** production: refuse loopback, link-local, metadata addresses, unspecified addresses; dev/test: allow loopback (still refuse metadata + link-local) */
  production: boolean;
  /** hosts or CIDRs always allowed (checked first), e.g. ['10.0.0.0/8', 'mcp.internal.example.com', '*.corp.example.com'] */
  allow: string[];
  /** hosts or CIDRs always refused, e.g. ['192.168.0.0/16', 'evil.example'] */
  deny: string[];
}

export type UnsafeUrlReason =
  'scheme' | 'credentials' | 'denied' | 'link-local' | 'metadata' | 'loopback' | 'unspecified' | 'unresolvable' | 'invalid';

/**
 * `message` is what the API caller sees (on a 400 and in a check's `lastError`): it says which
 * rule refused the URL but not the addresses a name resolved to or which list entry matched,
 * so the refusal does not map internal DNS or the operator's lists for someone probing them.
 * `detail` has all of it, for the logs.
 */
export class UnsafeUrlError extends Error {
  readonly detail: string;

  constructor(
    message: string,
    readonly reason: UnsafeUrlReason,
    detail?: string,
  ) {
    super(message);
    this.name = 'UnsafeUrlError';
    this.detail = detail ?? message;
  }
}

export type LookupFn = (host: string) => Promise<{ address: string; family: number }[]>;

type Entry =
  | { kind: 'name'; text: string; name: string }
  | { kind: 'suffix'; text: string; suffix: string }
  | { kind: 'cidr'; text: string; family: Family; block: BlockList };

interface CompiledPolicy {
  production: boolean;
  allow: Entry[];
  deny: Entry[];
}

function hostNameError(entry: string, why: string): Error {
  return new Error(`invalid host list entry "${entry}": ${why}`);
}

const LABELS = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

function parseName(entry: string, name: string): string {
  const ascii = domainToASCII(name.replace(/\.+$/, ''));
  if (!ascii || !LABELS.test(ascii)) {
    throw hostNameError(entry, 'expected a host name, *.suffix wildcard, IP address or CIDR (no scheme, port or path)');
  }
  // URL parsing turns names ending in a numeric label into IPv4 addresses, so such a name entry could never match.
  if (/^(\d+|0x[0-9a-f]*)$/.test(ascii.slice(ascii.lastIndexOf('.') + 1))) {
    throw hostNameError(entry, 'not a valid IP address');
  }
  return ascii;
}

function parseEntry(entry: string): Entry {
  const bracketed = /^\[([^\]]+)\](\/.*)?$/.exec(entry);
  const text = bracketed ? `${bracketed[1]}${bracketed[2] ?? ''}` : entry;

  const slash = text.indexOf('/');
  if (slash !== -1) {
    const network = text.slice(0, slash);
    const prefixText = text.slice(slash + 1);
    const family = isIP(network);
    if (family === 0) throw hostNameError(entry, `"${network}" is not an IP address`);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw hostNameError(entry, `prefix length must be a whole number from 0 to ${max}`);
    }
    if (family === 6 && toIp(network)?.family === 'ipv4') {
      throw hostNameError(entry, 'write IPv4-mapped ranges in IPv4 form (e.g. 10.0.0.0/8)');
    }
    const ipFamily: Family = family === 4 ? 'ipv4' : 'ipv6';
    return { kind: 'cidr', text: entry, family: ipFamily, block: blockListOf([[network, Number(prefixText), ipFamily]]) };
  }

  const ip = toIp(text);
  if (ip) {
    const prefix = ip.family === 'ipv4' ? 32 : 128;
    return { kind: 'cidr', text: entry, family: ip.family, block: blockListOf([[ip.address, prefix, ip.family]]) };
  }

  if (text.startsWith('*.')) {
    return { kind: 'suffix', text: entry, suffix: `.${parseName(entry, text.slice(2))}` };
  }
  return { kind: 'name', text: entry, name: parseName(entry, text) };
}

/** Splits a comma- or whitespace-separated ALLOW/DENY list and validates every entry. */
export function parseHostList(value: string | undefined): string[] {
  if (!value) return [];
  const entries = value
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry.length > 0);
  for (const entry of entries) parseEntry(entry);
  return entries;
}

function compile(policy: UrlPolicy): CompiledPolicy {
  const entries = (list: string[]) => list.map((entry) => parseEntry(entry.trim().toLowerCase()));
  return { production: policy.production, allow: entries(policy.allow), deny: entries(policy.deny) };
}

function matchName(entries: Entry[], name: string): Entry | undefined {
  return entries.find(
    (entry) => (entry.kind === 'name' && entry.name === name) || (entry.kind === 'suffix' && name.endsWith(entry.suffix)),
  );
}

function matchIp(entries: Entry[], ip: Ip): Entry | undefined {
  // Node's BlockList treats IPv4 as IPv4-mapped IPv6, so an IPv6 entry like ::/0 would also cover
  // every IPv4 address; comparing only within one family keeps each entry meaning what it says.
  return entries.find((entry) => entry.kind === 'cidr' && entry.family === ip.family && inList(entry.block, ip));
}

interface Target {
  /** The host as it appears in the URL (lower-cased, IPv6 in brackets), for messages. */
  display: string;
  /** Lower-cased, trailing dots removed; used for name matching. */
  name: string;
  ip: Ip | undefined;
}

function targetOf(url: URL): Target {
  return targetOfHost(url.hostname);
}

/** A host as written (a URL's hostname, or the name a socket looks up). */
function targetOfHost(display: string): Target {
  const name = display.toLowerCase().replace(/\.+$/, '');
  return { display, name, ip: toIp(name) };
}

function isLoopbackName(name: string): boolean {
  // RFC 6761: resolvers may answer any *.localhost name with loopback without asking DNS.
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Name-only rules: deny list, metadata names, loopback names. Returns true when the allow list admits the name. */
function checkName(target: Target, policy: CompiledPolicy): boolean {
  const denied = matchName(policy.deny, target.name);
  if (denied) {
    throw new UnsafeUrlError(
      `URL host ${target.display} is refused by the deny list`,
      'denied',
      `URL host ${target.display} is refused by the deny list (${denied.text})`,
    );
  }
  // Metadata is refused even when allowed: a broad allow entry must never expose instance credentials.
  if (METADATA_NAMES.has(target.name)) {
    throw new UnsafeUrlError(`URL host ${target.display} is a cloud metadata address`, 'metadata');
  }
  if (matchName(policy.allow, target.name)) return true;
  if (policy.production && isLoopbackName(target.name)) {
    throw new UnsafeUrlError(`URL host ${target.display} is a loopback name, which is refused in production`, 'loopback');
  }
  return false;
}

interface Origin {
  /** The host as written in the URL, for messages. */
  display: string;
  /** True when the address came from DNS rather than from the URL itself. */
  resolved: boolean;
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

/**
 * The caller's sentence ("URL host 127.0.0.1 is a loopback address, which …", "URL host
 * x.example resolves to a loopback address, which …") and the log's, which adds the resolved
 * address and the matching list entry.
 */
function sentences(
  origin: Origin,
  ip: Ip,
  kind: string | undefined,
  tail: string | undefined,
  entry?: string,
): { message: string; detail: string } {
  const which = tail ? `, which ${tail}` : '';
  const listed = entry ? ` (${entry})` : '';
  if (origin.resolved) {
    const carried = ip.via ? ` (carried in ${ip.via})` : '';
    return {
      message: kind
        ? `URL host ${origin.display} resolves to ${article(kind)} ${kind} address${which}`
        : `URL host ${origin.display} resolves to an address that ${tail}`,
      detail: `URL host ${origin.display} resolves to ${kind ? `${kind} address ` : ''}${ip.address}${carried}${which}${listed}`,
    };
  }
  // IPv6 that carries IPv4 shows its IPv4 meaning too, so "[::ffff:a9fe:a9fe]" is not a puzzle in the message.
  const written = origin.display.replace(/^\[(.*)\]$/, '$1');
  const shown = written === ip.address ? origin.display : `${origin.display} (${ip.address})`;
  const message = kind ? `URL host ${shown} is ${article(kind)} ${kind} address${which}` : `URL host ${shown}${tail ? ` ${tail}` : ''}`;
  return { message, detail: `${message}${listed}` };
}

function checkOneAddress(ip: Ip, policy: CompiledPolicy, allowedByName: boolean, origin: Origin): void {
  const refuse = (reason: UnsafeUrlReason, kind: string | undefined, tail?: string, entry?: string) => {
    const { message, detail } = sentences(origin, ip, kind, tail, entry);
    return new UnsafeUrlError(message, reason, detail);
  };
  const denied = matchIp(policy.deny, ip);
  if (denied) throw refuse('denied', undefined, 'is refused by the deny list', denied.text);
  // Metadata is refused even when allowed: a broad allow entry must never expose instance credentials.
  if (inList(METADATA_ADDRESSES, ip)) throw refuse('metadata', 'cloud metadata');
  if (allowedByName || matchIp(policy.allow, ip)) return;
  if (inList(LINK_LOCAL, ip)) throw refuse('link-local', 'link-local');
  if (!policy.production) return;
  if (inList(LOOPBACK, ip)) throw refuse('loopback', 'loopback', 'is refused in production');
  if (inList(UNSPECIFIED, ip)) throw refuse('unspecified', 'unspecified', 'is refused in production');
}

/** The address itself, then every IPv4 address it carries: each must pass on its own. */
function checkAddress(ip: Ip, policy: CompiledPolicy, allowedByName: boolean, origin: Origin): void {
  for (const candidate of [ip, ...(ip.embedded ?? [])]) checkOneAddress(candidate, policy, allowedByName, origin);
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    // The raw text is not echoed: it may carry a token or password that would end up in logs.
    throw new UnsafeUrlError('URL is not a valid absolute URL', 'invalid');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UnsafeUrlError(`only http and https URLs are allowed (got ${url.protocol.slice(0, -1)})`, 'scheme');
  }
  if (url.username !== '' || url.password !== '') {
    throw new UnsafeUrlError('URL must not contain a user name or password; the platform sends its own credentials', 'credentials');
  }
  if (url.hostname.replace(/\.+$/, '') === '') throw new UnsafeUrlError('URL has no host', 'invalid');
  return url;
}

interface StaticResult {
  url: URL;
  compiled: CompiledPolicy;
  target: Target;
  allowedByName: boolean;
}

function staticCheck(raw: string, policy: UrlPolicy): StaticResult {
  const url = parseUrl(raw);
  const compiled = compile(policy);
  const target = targetOf(url);
  if (target.ip) {
    checkAddress(target.ip, compiled, false, { display: target.display, resolved: false });
    return { url, compiled, target, allowedByName: false };
  }
  return { url, compiled, target, allowedByName: checkName(target, compiled) };
}

/** Syntax + static checks (no DNS): http/https only, no user:password@, host present; literal IPs checked against the rules. Returns the URL. */
export function checkUrlSyntax(raw: string, policy: UrlPolicy): URL {
  return staticCheck(raw, policy).url;
}

const defaultLookup: LookupFn = (host) => dnsLookup(host, { all: true, verbatim: true });

/** Full check for connect time: checkUrlSyntax, then resolve the hostname (node:dns/promises lookup with all:true) and check EVERY resolved address (prevents DNS names pointing at 169.254.169.254). Literal IP hosts skip DNS. */
export async function assertSafeUrl(raw: string, policy: UrlPolicy, lookup: LookupFn = defaultLookup): Promise<URL> {
  const { url, compiled, target, allowedByName } = staticCheck(raw, policy);
  if (target.ip) return url;

  let results: { address: string; family: number }[];
  try {
    // Resolve exactly what the HTTP client will resolve: "intranet." and "intranet" differ once search domains apply.
    results = await lookup(target.display);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    throw new UnsafeUrlError(`URL host ${target.display} could not be resolved${code ? ` (${code})` : ''}`, 'unresolvable');
  }
  checkResolved(target, results, compiled, allowedByName);
  return url;
}

/** Every address a name resolved to passes, because the client may connect to any of them. */
function checkResolved(
  target: Target,
  results: { address: string; family: number }[],
  compiled: CompiledPolicy,
  allowedByName: boolean,
): void {
  if (results.length === 0) throw new UnsafeUrlError(`URL host ${target.display} could not be resolved (no addresses)`, 'unresolvable');
  for (const result of results) {
    const ip = toIp(result.address);
    if (!ip) {
      throw new UnsafeUrlError(
        `URL host ${target.display} could not be resolved to an IP address`,
        'unresolvable',
        `URL host ${target.display} resolved to "${result.address}", which is not an IP address`,
      );
    }
    checkAddress(ip, compiled, allowedByName, { display: target.display, resolved: true });
  }
}

/**
 * The `lookup` of the sockets that reach MCP servers (lib/mcp-client.ts): it resolves the name
 * and checks every address with assertSafeUrl's rules, so the address a connection uses is
 * one that was checked. A name that points somewhere else by the time of the connection (DNS
 * rebinding, after assertSafeUrl passed) fails the connection with an UnsafeUrlError. Literal
 * IP hosts never come here (sockets do not look them up); assertSafeUrl checks those.
 */
export function policyLookup(policy: UrlPolicy, resolve: LookupFn = defaultLookup): LookupFunction {
  const compiled = compile(policy);
  return (hostname, options, callback) => {
    const target = targetOfHost(hostname);
    const answer = async () => {
      const allowedByName = checkName(target, compiled);
      const results = await resolve(hostname);
      checkResolved(target, results, compiled, allowedByName);
      const usable = options.family === 4 || options.family === 6 ? results.filter((r) => r.family === options.family) : results;
      if (usable.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
      return usable;
    };
    answer().then(
      (usable) => (options.all ? callback(null, usable) : callback(null, usable[0]!.address, usable[0]!.family)),
      (error: NodeJS.ErrnoException) => callback(error, options.all ? [] : ''),
    );
  };
}
