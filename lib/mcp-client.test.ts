import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CLIENT_INFO, EXECUTION_META_KEY, routeInputRequests, type InputListener } from './mcp-client';
import { McpClientPool } from './mcp-pool';
import { startCaptureServer } from '../test/capture-server';
import { policyLookup, UnsafeUrlError, type LookupFn } from './ssrf';
import { startMcpServer, type StreamableTestMcpServer } from '../test/mcp-servers';

describe('McpClientPool', () => {
  let server: StreamableTestMcpServer;
  beforeAll(async () => {
    server = await startMcpServer();
  });
  afterAll(() => server.close());

  const target = () => ({ serverId: 'srv-1', url: server.url, transport: 'streamable-http' as const, token: server.token });

  describe('with the URL policy at the socket (DNS rebinding)', () => {
    // Resolvers standing in for DNS, which this machine cannot serve on port 53 (rebind.test is
    // a name no real resolver knows). The rebinding one answers what an attacker's DNS answers
    // once the URL check has passed: the cloud metadata address.
    const resolver: LookupFn = async () => [{ address: '169.254.169.254', family: 4 }];
    const via = () => ({
      serverId: 'rebind',
      url: server.url.replace('127.0.0.1', 'rebind.test'),
      transport: 'streamable-http' as const,
      token: server.token,
    });

    it('connects to the address the name resolves to when it passes the policy', async () => {
      const pool = new McpClientPool({
        timeoutMs: 30_000,
        lookup: policyLookup({ production: false, allow: [], deny: [] }, async () => [{ address: '127.0.0.1', family: 4 }]),
      });
      try {
        await pool.withConnection(via(), (c) => c.client.ping());
      } finally {
        await pool.closeAll();
      }
    });

    it('refuses the connection when the name now points at a forbidden address, and sends nothing', async () => {
      const pool = new McpClientPool({ timeoutMs: 30_000, lookup: policyLookup({ production: false, allow: [], deny: [] }, resolver) });
      const before = server.requests;
      try {
        const failure = pool.withConnection(via(), (c) => c.client.ping());
        await expect(failure).rejects.toBeInstanceOf(UnsafeUrlError);
        await expect(failure).rejects.toMatchObject({
          reason: 'metadata',
          message: 'URL host rebind.test resolves to a cloud metadata address',
        });
        expect(server.requests).toBe(before);
      } finally {
        await pool.closeAll();
      }
    });

    it('applies the deny list to the address the socket uses', async () => {
      const pool = new McpClientPool({
        timeoutMs: 30_000,
        lookup: policyLookup({ production: false, allow: [], deny: ['127.0.0.0/8'] }, async () => [{ address: '127.0.0.1', family: 4 }]),
      });
      try {
        await expect(pool.withConnection(via(), (c) => c.client.ping())).rejects.toMatchObject({ reason: 'denied' });
      } finally {
        await pool.closeAll();
      }
    });
  });

  it('reuses one connection per server and closes it once idle', async () => {
    // Idle long enough that a loaded machine does not close it between the two calls.
    const pool = new McpClientPool({ timeoutMs: 30_000, idleMs: 2_000 });
    try {
      const before = server.requests;
      await pool.withConnection(target(), (c) => c.client.ping());
      // The connection's opening requests: initialize, its notification, the ping, and the GET of
      // the event stream (refused here), which the client sends on sockets of its own, unawaited.
      const deadline = Date.now() + 60_000;
      while (server.requests < before + 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const requests = server.requests;
      expect(requests).toBe(before + 4);
      await pool.withConnection(target(), (c) => c.client.ping());
      expect(server.requests).toBe(requests + 1);
      expect(pool.size).toBe(1);
      // Closed after 2 s idle; on a loaded machine the timer and the close may come later.
      const closeBy = Date.now() + 60_000;
      while (pool.size > 0 && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 50));
      expect(pool.size).toBe(0);
    } finally {
      await pool.closeAll();
    }
  });

  it('never closes a connection while a call is using it', async () => {
    const pool = new McpClientPool({ timeoutMs: 5000, idleMs: 50 });
    try {
      await pool.withConnection(target(), async (c) => {
        await new Promise((r) => setTimeout(r, 300));
        await c.client.ping();
      });
      expect(pool.size).toBe(1);
    } finally {
      await pool.closeAll();
    }
  });

  it('never closes a connection while it is being opened, however long initialize takes', async () => {
    const slow = await startMcpServer({ delayMs: 300 });
    const pool = new McpClientPool({ timeoutMs: 5000, idleMs: 50 });
    try {
      await pool.withConnection({ serverId: 'slow', url: slow.url, transport: 'streamable-http', token: slow.token }, (c) =>
        c.client.ping(),
      );
    } finally {
      await pool.closeAll();
      await slow.close();
    }
  });

  it('opens a new connection when the token changes', async () => {
    const pool = new McpClientPool({ timeoutMs: 2000 });
    try {
      await pool.withConnection(target(), (c) => c.client.ping());
      await expect(pool.withConnection({ ...target(), token: 'wrong-token' }, (c) => c.client.ping())).rejects.toThrow(
        'the server rejected the master token (HTTP 401)',
      );
      expect(pool.size).toBe(0);
    } finally {
      await pool.closeAll();
    }
  });
});

// The master token must reach only the registered origin: a server must not be able to bounce it,
// or the platform's requests, to a host the URL policy never saw.
describe('redirects', () => {
  // As the worker's pool: sockets resolve names through the URL policy (development rules).
  const workerLookup = policyLookup({ production: false, allow: [], deny: [] });
  const servers: { close(): Promise<void> }[] = [];
  afterAll(() => Promise.all(servers.map((s) => s.close())));

  async function started<T extends { close(): Promise<void> }>(server: Promise<T>): Promise<T> {
    servers.push(await server);
    return server;
  }

  /** 127.0.0.1:PORT whose /mcp answers `status` with a Location to `to`. */
  function redirecting(status: number, to: (req: IncomingMessage) => string) {
    return started(
      startCaptureServer((req, res) => {
        res.writeHead(status, { location: to(req) });
        res.end();
      }),
    );
  }

  it.each(['streamable-http', 'sse'] as const)('refuses a redirect to another origin and sends it nothing (%s)', async (transport) => {
    const elsewhere = await started(startCaptureServer());
    // localhost and 127.0.0.1 are different origins, although the same host.
    const origin = await redirecting(307, () => `http://localhost:${elsewhere.port}/mcp`);
    const pool = new McpClientPool({ timeoutMs: 30_000, lookup: workerLookup });
    try {
      const failure = pool.withConnection(
        { serverId: `redirect-${transport}`, url: origin.url, transport, token: 'the-master-token' },
        (c) => c.client.ping(),
      );
      await expect(failure).rejects.toMatchObject({
        kind: 'redirect',
        message: 'the server redirects (HTTP 307) to a place mcp-fleet does not follow; register the final URL',
      });
      expect(origin.requests.length).toBeGreaterThan(0);
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await pool.closeAll();
    }
  });

  it('follows a redirect within the origin, token included', async () => {
    const mcp = await started(startMcpServer());
    // One origin: /old redirects to /mcp, which is passed on to the real MCP server.
    const front = await started(
      startCaptureServer((req, res) => {
        if (req.url === '/old') {
          res.writeHead(308, { location: '/mcp' });
          res.end();
          return;
        }
        const upstream = httpRequest(`http://127.0.0.1:${mcp.port}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        req.pipe(upstream);
      }),
    );
    const pool = new McpClientPool({ timeoutMs: 30_000, lookup: workerLookup });
    try {
      const url = front.url.replace(/\/mcp$/, '/old');
      await pool.withConnection({ serverId: 'same-origin', url, transport: 'streamable-http', token: mcp.token }, (c) => c.client.ping());
      expect(front.requests.filter((r) => r.path === '/mcp').every((r) => r.authorization === `Bearer ${mcp.token}`)).toBe(true);
    } finally {
      await pool.closeAll();
    }
  });

  it('gives up after 5 redirects within the origin', async () => {
    const loop = await redirecting(307, (req) => `/mcp${req.url}`);
    const pool = new McpClientPool({ timeoutMs: 30_000, lookup: workerLookup });
    try {
      await expect(
        pool.withConnection({ serverId: 'loop', url: loop.url, transport: 'streamable-http', token: 't' }, (c) => c.client.ping()),
      ).rejects.toMatchObject({
        kind: 'redirect',
        message: 'the server redirects (HTTP 307) to a place mcp-fleet does not follow; register the final URL',
      });
      expect(loop.requests).toHaveLength(6);
    } finally {
      await pool.closeAll();
    }
  });
});

describe('routeInputRequests: which run answers a host question', () => {
  const schema = { type: 'object' as const, properties: { answer: { type: 'string' as const } }, required: ['answer'] };

  async function pair() {
    const server = new Server({ name: 'asking-host', version: '1.0.0' }, { capabilities: {} });
    const client = new Client(CLIENT_INFO, { capabilities: { elicitation: { form: {} } } });
    const listeners = routeInputRequests(client);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    const ask = (meta?: Record<string, unknown>) =>
      server.elicitInput({ message: 'Which?', requestedSchema: schema, ...(meta ? { _meta: meta } : {}) });
    return { listeners, ask, close: () => Promise.all([client.close(), server.close()]) };
  }

  const answering =
    (answer: string): InputListener =>
    async () => ({ action: 'accept', content: { answer } });

  it('routes by the executionId meta, else to the only run on the connection, and declines what it cannot place', async () => {
    const { listeners, ask, close } = await pair();
    try {
      const first = answering('first');
      listeners.set('exec-1', first);
      listeners.set('task-1', first);
      expect(await ask()).toEqual({ action: 'accept', content: { answer: 'first' } });
      listeners.set('exec-2', answering('second'));
      expect(await ask({ [EXECUTION_META_KEY]: 'exec-2' })).toEqual({ action: 'accept', content: { answer: 'second' } });
      expect(await ask({ [EXECUTION_META_KEY]: 'exec-9' })).toEqual({ action: 'decline' });
      // Two runs and nothing naming either: nobody may guess.
      expect(await ask()).toEqual({ action: 'decline' });
      expect(await ask({ 'io.modelcontextprotocol/related-task': { taskId: 'task-1' } })).toEqual({
        action: 'accept',
        content: { answer: 'first' },
      });
    } finally {
      await close();
    }
  });
});
