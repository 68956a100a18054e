/**
 * The network of a sandboxed command whose agent has an allowlist (`network:<host>`
 * capabilities at provision_agent). The sandbox has no network of its own (sandbox.ts); the
 * host runs an HTTP proxy for the command on a Unix socket mounted into it, and a bridge
 * inside (a few lines of node, NETWORK_BRIDGE) turns 127.0.0.1:3128 into that socket, where
 * HTTP_PROXY and HTTPS_PROXY point. The proxy lets through CONNECT tunnels and plain HTTP
 * requests to the hosts and ports the allowlist names, and nothing else; so `git clone`,
 * `curl`, `pip` of an allowed host work, and a program that ignores the proxy settings reaches
 * nothing at all.
 */
import { lookup } from 'node:dns/promises';
import { chmod, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import { inList, LINK_LOCAL, LOOPBACK, METADATA_ADDRESSES, METADATA_NAMES, toIp, UNSPECIFIED } from '../lib/ssrf-address';

/** The capability prefix of an allowlist entry: `network:github.com`, `network:*.pypi.org`, `network:127.0.0.1:8080`. */
export const NETWORK_CAPABILITY = 'network:';

/** Where the bridge listens inside the sandbox. */
export const PROXY_PORT = 3128;

/** Where the proxy's socket is mounted inside the sandbox. */
export const PROXY_SOCKET_IN_SANDBOX = '/run/mcp-fleet/proxy.sock';

/** One allowlist entry: a host (exact, or every subdomain with `*.`), and a port or the web's two. */
export interface NetworkEntry {
  text: string;
  host: string;
  wildcard: boolean;
  /** undefined: 80 and 443; '*': any. */
  port?: number | '*';
  /** An IP literal or `localhost`: the only entries that may reach loopback. */
  literal: boolean;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Parses `host`, `*.domain`, `host:port`, `host:*`, `1.2.3.4:5`, `[::1]:5`; throws a sentence for anything else. */
export function parseNetworkEntry(text: string): NetworkEntry {
  const bad = (why: string) =>
    new Error(`capability ${NETWORK_CAPABILITY}${text} ${why}: write a host, *.domain, host:port or an IP address`);
  let host = text.trim().toLowerCase();
  let port: NetworkEntry['port'];
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d+|\*))?$/.exec(host);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2]) port = bracketed[2] === '*' ? '*' : Number(bracketed[2]);
  } else if (isIP(host) !== 6) {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) {
      const given = host.slice(colon + 1);
      host = host.slice(0, colon);
      if (given === '*') port = '*';
      else if (/^\d{1,5}$/.test(given)) port = Number(given);
      else throw bad('has no valid port');
    }
  }
  if (typeof port === 'number' && (port < 1 || port > 65535)) throw bad('has no valid port');
  const wildcard = host.startsWith('*.');
  if (wildcard) host = host.slice(2);
  const ip = isIP(host) !== 0;
  if (ip && wildcard) throw bad('puts a wildcard before an address');
  if (!ip && !HOST_NAME.test(host)) throw bad('is not a host name');
  return {
    text,
    host: ip ? toIp(host)!.address : host,
    wildcard,
    ...(port !== undefined ? { port } : {}),
    literal: ip || host === 'localhost',
  };
}

/** The agent's allowlist from its capabilities; throws the first entry that is not one. */
export function networkAllowlist(capabilities: readonly string[]): NetworkEntry[] {
  return capabilities.filter((c) => c.startsWith(NETWORK_CAPABILITY)).map((c) => parseNetworkEntry(c.slice(NETWORK_CAPABILITY.length)));
}

/** The entry that lets `host:port` through, if one does. */
export function allowedBy(allowlist: readonly NetworkEntry[], host: string, port: number): NetworkEntry | undefined {
  const name = (toIp(host)?.address ?? host).toLowerCase().replace(/\.$/, '');
  return allowlist.find((entry) => {
    const portOk = entry.port === '*' || (entry.port === undefined ? port === 80 || port === 443 : entry.port === port);
    const hostOk = entry.wildcard ? name.endsWith(`.${entry.host}`) : name === entry.host;
    return portOk && hostOk;
  });
}

/**
 * The address to connect to for an allowed name: resolved here (not again by the connection),
 * and never loopback, link-local, a cloud metadata or an unspecified address unless the entry
 * names an address or `localhost` itself: a name in the allowlist that resolves to the host's
 * own services (DNS rebinding) reaches nothing.
 */
export async function addressFor(
  host: string,
  entry: NetworkEntry,
  resolve: (host: string) => Promise<{ address: string }[]> = (name) => lookup(name, { all: true }),
): Promise<string> {
  const literal = toIp(host);
  const candidates = literal ? [literal.address] : (await resolve(host)).map((a) => a.address);
  if (METADATA_NAMES.has(host)) throw new Error(`${host} is a cloud metadata name`);
  for (const candidate of candidates) {
    const ip = toIp(candidate);
    if (!ip) continue;
    if (inList(METADATA_ADDRESSES, ip) || inList(LINK_LOCAL, ip)) continue;
    if (!entry.literal && (inList(LOOPBACK, ip) || inList(UNSPECIFIED, ip))) continue;
    return ip.address;
  }
  throw new Error(`${host} resolves to no address the allowlist may reach`);
}

function hostAndPort(target: string, defaultPort: number): { host: string; port: number } | undefined {
  const match = /^\[([^\]]+)\](?::(\d+))?$|^([^:]+)(?::(\d+))?$/.exec(target);
  if (!match) return undefined;
  const host = match[1] ?? match[3]!;
  const port = Number(match[2] ?? match[4] ?? defaultPort);
  return Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : undefined;
}

const BLOCKED = (target: string) =>
  `blocked by the agent's network allowlist: ${target} (an agent reaches only the hosts of its network:<host> capabilities)\n`;

export interface NetworkProxy {
  socket: string;
  /** host:port the proxy refused, in order. */
  blocked: string[];
  close(): Promise<void>;
}

/** Starts the proxy of one sandboxed command on `socket` (a path the sandbox's user may connect to). */
export async function startNetworkProxy(allowlist: readonly NetworkEntry[], socket: string): Promise<NetworkProxy> {
  const blocked: string[] = [];
  const open = new Set<Socket>();
  const check = async (host: string, port: number): Promise<string | undefined> => {
    const entry = allowedBy(allowlist, host, port);
    if (!entry) return undefined;
    return addressFor(host, entry).catch(() => undefined);
  };

  const server: Server = createServer((req: IncomingMessage, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('the proxy takes absolute http:// URLs and CONNECT\n');
      return;
    }
    const target = hostAndPort(url.host, url.protocol === 'https:' ? 443 : 80);
    if (url.protocol !== 'http:' || !target) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('the proxy takes absolute http:// URLs and CONNECT\n');
      return;
    }
    void check(target.host, target.port).then((address) => {
      if (!address) {
        blocked.push(`${target.host}:${target.port}`);
        res.writeHead(403, { 'content-type': 'text/plain' }).end(BLOCKED(`${target.host}:${target.port}`));
        return;
      }
      const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: url.host };
      delete headers['proxy-connection'];
      delete headers['proxy-authorization'];
      const upstream = request(
        { host: address, port: target.port, method: req.method, path: `${url.pathname}${url.search}`, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end();
      });
      req.pipe(upstream);
    });
  });

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    const target = hostAndPort(req.url ?? '', 443);
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    void check(target.host, target.port).then((address) => {
      if (!address) {
        blocked.push(`${target.host}:${target.port}`);
        const body = BLOCKED(`${target.host}:${target.port}`);
        client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        return;
      }
      const upstream = connect(target.port, address, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      open.add(upstream);
      upstream.on('close', () => open.delete(upstream));
      upstream.on('error', () => {
        if (!client.destroyed) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
        client.destroy();
      });
      client.on('close', () => upstream.destroy());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  // The sandbox's user (nobody, on a root host) connects to it; its directory is the host's own.
  await chmod(socket, 0o666);
  return {
    socket,
    blocked,
    close: async () => {
      for (const connection of open) connection.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socket, { force: true });
    },
  };
}

/**
 * The bridge, run by node as the sandbox's first process: 127.0.0.1:PROXY_PORT to the proxy's
 * socket, then the command (its arguments, after node's `--`), whose exit it passes on (a
 * signal as 128 + N, as bwrap does).
 */
export const NETWORK_BRIDGE = `
const net = require('node:net');
const { spawn } = require('node:child_process');
const { constants } = require('node:os');
const argv = process.argv.slice(1);
const server = net.createServer((client) => {
  const upstream = net.connect(${JSON.stringify(PROXY_SOCKET_IN_SANDBOX)});
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(${PROXY_PORT}, '127.0.0.1', () => {
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
  child.on('error', (error) => { process.stderr.write(String(error.message) + '\\n'); process.exit(127); });
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] || 9)));
});
`;

/** The proxy variables of a command with network: what curl, git, pip, npm and most HTTP libraries read. */
export function proxyEnvironment(): NodeJS.ProcessEnv {
  const url = `http://127.0.0.1:${PROXY_PORT}`;
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: '', no_proxy: '' };
}
