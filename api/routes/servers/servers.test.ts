import { randomBytes, randomUUID } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Client } from 'pg';
import { EVENTS_CHANNEL } from '../../../domain/events';
import { AuditLog, Agent, AgentRole, AgentStatus, McpServer, Organization } from '../../../entities';
import { openSecret } from '../../../lib/crypto';
import { rotateServerTokens } from '../../../domain/servers/key-rotation';
import { loadConfig } from '../../../lib/config';
import { masterTokenContext } from '../../../domain/servers/master-token';
import { ensureServerHealthSchedule } from '../../../worker/schedules';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { waitFor } from '../../../test/fleet';
import { makeAgent } from '../../../test/factories';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { startCaptureServer, type CaptureServer } from '../../../test/capture-server';
import { startAgentHost } from '../../../host/server';
import {
  closedPortUrl,
  HOST_TOOL_NAMES,
  startHtmlOkServer,
  startMcpServer,
  startNotMcpServer,
  startSseOnlyMcpServer,
  type TestMcpServer,
} from '../../../test/mcp-servers';

describe('MCP servers', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let logs: string;
  const mcpServers: TestMcpServer[] = [];
  const captures: CaptureServer[] = [];

  async function mcp<T extends TestMcpServer>(started: Promise<T>): Promise<T> {
    const server = await started;
    mcpServers.push(server);
    return server;
  }

  beforeAll(async () => {
    ctx = await createTestContext();
    // Thresholds a healthy local server stays far below even on a loaded CI machine (a fresh
    // connection's initialize + ping + tools/list took over a second there); the slow servers
    // below are slow by several times the delay.
    ctx.config = { ...ctx.config, mcp: { ...ctx.config.mcp, timeoutMs: 8000, degradedLatencyMs: 4000 } };
    // Every log line of the API and the worker, at the most verbose level, to prove no token leaks.
    logs = '';
    ctx.logger = pino({ level: 'trace' }, new Writable({ write: (chunk, _enc, done) => ((logs += chunk.toString()), done()) }));
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Servers Org');
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all([...mcpServers, ...captures].map((s) => s.close()));
    await ctx?.close();
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  async function register(account: Account, body: Record<string, unknown>) {
    const res = await http
      .post('/api/servers')
      .set(as(account))
      .send({ name: `srv-${randomUUID().slice(0, 8)}`, ...body });
    expect(res.status).toBe(201);
    return res.body as { id: string; name: string; status: string; masterToken: { set: boolean; last4: string | null } };
  }

  async function check(account: Account, id: string, kind: 'test' | 'health' = 'test') {
    const res = await http.post(`/api/servers/${id}/${kind}`).set(as(account));
    expect(res.status).toBe(200);
    return res.body as {
      ok: boolean;
      status: string;
      latencyMs: number | null;
      error?: string;
      tools: string[];
      transport: string | null;
      serverInfo: { name: string } | null;
      protocolVersion: string | null;
      toolsChanged?: Record<string, string[]>;
    };
  }

  it('registers a server with its master token encrypted at rest and never shown', async () => {
    const host = await mcp(startMcpServer());
    const created = await register(admin, { url: host.url, masterToken: host.token, description: 'main host' });
    expect(created).toMatchObject({ status: 'UNKNOWN', masterToken: { set: true, last4: host.token.slice(-4) } });
    expect(JSON.stringify(created)).not.toContain(host.token);

    const [row] = await ctx.orm.em
      .getConnection()
      .execute<{ master_token_ciphertext: string; master_token_key_id: string }[]>(
        'select master_token_ciphertext, master_token_key_id from mcp_servers where id = ?',
        [created.id],
      );
    expect(row!.master_token_key_id).toBe(ctx.config.encryptionKeys[0]!.id);
    for (const encoding of ['utf8', 'base64', 'base64url', 'hex'] as const) {
      expect(row!.master_token_ciphertext).not.toContain(Buffer.from(host.token).toString(encoding));
    }
    const fetched = await http.get(`/api/servers/${created.id}`).set(as(admin)).expect(200);
    expect(JSON.stringify(fetched.body)).not.toContain(host.token);
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: created.id, action: 'server.create' });
    expect(JSON.stringify(audit)).not.toContain(host.token);
  });

  it('tests a healthy server through a workflow: ONLINE with server info, protocol version and tools, stored on the server', async () => {
    const host = await mcp(startMcpServer({ name: 'healthy-host', version: '2.3.4' }));
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    const result = await check(admin, id);
    expect(result).toMatchObject({ ok: true, status: 'ONLINE', serverInfo: { name: 'healthy-host' }, transport: 'streamable-http' });
    expect(result.protocolVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(result.tools.sort()).toEqual([...HOST_TOOL_NAMES].sort());
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    const stored = (await http.get(`/api/servers/${id}`).set(as(admin)).expect(200)).body;
    expect(stored).toMatchObject({
      status: 'ONLINE',
      lastError: null,
      serverInfo: { name: 'healthy-host', version: '2.3.4' },
      protocolVersion: result.protocolVersion,
    });
    expect(stored.tools.sort()).toEqual([...HOST_TOOL_NAMES].sort());
    expect(stored.lastCheckAt).not.toBeNull();
    // A server that does not say how it runs commands.
    expect(stored.sandbox).toBeNull();
    expect((await check(admin, id, 'health')).status).toBe('ONLINE');
  });

  it('shows how a reference host runs agents’ commands, as its tools/list says: in a sandbox, or unsandboxed', async () => {
    const sandboxed = await startAgentHost({ token: `host-${randomUUID()}`, allowCommands: true });
    const unsandboxed = await startAgentHost({ token: `host-${randomUUID()}`, allowCommands: true, sandbox: { mode: 'off' } });
    try {
      for (const [host, expected] of [
        [sandboxed, 'bwrap'],
        [unsandboxed, 'off'],
      ] as const) {
        const { id } = await register(admin, { url: host.url, masterToken: host.token });
        expect((await check(admin, id)).status).toBe('ONLINE');
        expect((await http.get(`/api/servers/${id}`).set(as(admin)).expect(200)).body).toMatchObject({
          status: 'ONLINE',
          sandbox: expected,
        });
      }
    } finally {
      await Promise.all([sandboxed.close(), unsandboxed.close()]);
    }
  });

  it.each([
    {
      label: 'a rejected token',
      status: 'OFFLINE',
      message: /^the server rejected the master token \(HTTP 401\)$/,
      setup: async () => ({ server: await mcp(startMcpServer({ token: 'the-real-token-123' })), token: 'a-wrong-token-456' }),
    },
    {
      label: 'a server that is down',
      status: 'OFFLINE',
      message: /^connection refused at 127\.0\.0\.1:\d+$/,
      setup: async () => ({ url: await closedPortUrl(), token: 'whatever-token' }),
    },
    {
      label: 'a plain HTTP 404 endpoint',
      status: 'OFFLINE',
      message: /^no MCP endpoint at this URL \(HTTP 404\)$/,
      setup: async () => ({ server: await mcp(startNotMcpServer()), token: 'whatever-token' }),
    },
    {
      label: 'an ordinary web page',
      status: 'OFFLINE',
      message: /^the URL answered but does not speak MCP/,
      setup: async () => ({ server: await mcp(startHtmlOkServer()), token: 'whatever-token' }),
    },
    {
      label: 'a server slower than the timeout',
      status: 'OFFLINE',
      message: /^timed out after 8 s$/,
      setup: async () => ({ server: await mcp(startMcpServer({ delayMs: 9000 })) }),
    },
    // Every answer 1.6 s late: initialize, ping and tools/list take 4.8 s at least, each well within the timeout.
    {
      label: 'a slow server',
      status: 'DEGRADED',
      message: /^slower than 4000 ms \(\d+ ms\)$/,
      setup: async () => ({ server: await mcp(startMcpServer({ delayMs: 1600 })) }),
    },
    {
      label: 'a server without the host tools',
      status: 'DEGRADED',
      message: /^lacks host tools: execute_prompt, provision_agent/,
      setup: async () => ({ server: await mcp(startMcpServer({ tools: ['echo'] })) }),
    },
  ])('reports $label as $status with a message a person understands', async ({ setup, status, message }) => {
    const { server, url, token } = (await setup()) as { server?: TestMcpServer; url?: string; token?: string };
    const { id } = await register(admin, { url: url ?? server!.url, masterToken: token ?? server!.token });
    const result = await check(admin, id);
    expect(result.status).toBe(status);
    expect(result.error).toMatch(message);
    const stored = (await http.get(`/api/servers/${id}`).set(as(admin)).expect(200)).body;
    expect(stored.status).toBe(status);
    expect(stored.lastError).toMatch(message);
  });

  it('speaks the legacy SSE transport, when registered so and as a fallback', async () => {
    const host = await mcp(startSseOnlyMcpServer());
    const asSse = await register(admin, { url: host.url, masterToken: host.token, transport: 'sse' });
    expect(await check(admin, asSse.id)).toMatchObject({ status: 'ONLINE', transport: 'sse' });
    const asDefault = await register(admin, { url: host.url, masterToken: host.token });
    expect(await check(admin, asDefault.id)).toMatchObject({ status: 'ONLINE', transport: 'sse' });
  });

  it('emits one server:status event on Postgres NOTIFY per status change', async () => {
    const listener = new Client({ connectionString: ctx.config.database.url });
    await listener.connect();
    const events: Record<string, unknown>[] = [];
    listener.on('notification', (n) => n.channel === EVENTS_CHANNEL && events.push(JSON.parse(n.payload!) as Record<string, unknown>));
    await listener.query(`listen ${EVENTS_CHANNEL}`);
    try {
      const host = await mcp(startMcpServer());
      const { id } = await register(admin, { url: host.url, masterToken: host.token });
      await check(admin, id);
      await check(admin, id);
      await http.put(`/api/servers/${id}`).set(as(admin)).send({ masterToken: 'wrong-token-now' }).expect(200);
      await check(admin, id);
      // NOTIFYs arrive on their own connection, after the check answered.
      await waitFor(async () => events.filter((e) => e.serverId === id).length >= 3);
      const mine = events.filter((e) => e.serverId === id);
      expect(mine.map((e) => [e.previousStatus, e.status])).toEqual([
        ['UNKNOWN', 'ONLINE'],
        ['ONLINE', 'UNKNOWN'],
        ['UNKNOWN', 'OFFLINE'],
      ]);
      expect(mine[2]).toMatchObject({
        type: 'server:status',
        organizationId: admin.organizationId,
        reason: 'the server rejected the master token (HTTP 401)',
      });
    } finally {
      await listener.end();
    }
  });

  it('moves its agents with the check: ACTIVE ones to ERROR when the server is OFFLINE, back to ACTIVE once it answers', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    expect((await check(admin, id)).status).toBe('ONLINE');
    const em = ctx.orm.em.fork();
    const server = await em.findOneOrFail(McpServer, id);
    const [active, inactive] = [makeAgent(em, server), makeAgent(em, server)];
    active.status = AgentStatus.ACTIVE;
    inactive.status = AgentStatus.INACTIVE;
    await em.flush();
    const statusOf = async (agent: Agent) => (await ctx.orm.em.fork().findOneOrFail(Agent, agent.id)).status;

    await http.put(`/api/servers/${id}`).set(as(admin)).send({ masterToken: 'wrong-token-now' }).expect(200);
    expect((await check(admin, id)).status).toBe('OFFLINE');
    // Moved before the answer: the check's activity moves them before it returns.
    expect([await statusOf(active), await statusOf(inactive)]).toEqual([AgentStatus.ERROR, AgentStatus.INACTIVE]);

    await http.put(`/api/servers/${id}`).set(as(admin)).send({ masterToken: host.token }).expect(200);
    expect((await check(admin, id)).status).toBe('ONLINE');
    expect([await statusOf(active), await statusOf(inactive)]).toEqual([AgentStatus.ACTIVE, AgentStatus.INACTIVE]);
  });

  it('drops the pooled connection when the token changes: a new token is used at once', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    expect((await check(admin, id)).status).toBe('ONLINE');
    const put = await http.put(`/api/servers/${id}`).set(as(admin)).send({ masterToken: 'now-a-wrong-token' }).expect(200);
    expect(put.body.status).toBe('UNKNOWN');
    expect((await check(admin, id)).error).toBe('the server rejected the master token (HTTP 401)');
    await http.put(`/api/servers/${id}`).set(as(admin)).send({ masterToken: host.token }).expect(200);
    expect((await check(admin, id)).status).toBe('ONLINE');
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: id, action: 'server.update' });
    expect(audit.map((a) => a.changes)).toEqual([{ masterToken: { rotated: true } }, { masterToken: { rotated: true } }]);
  });

  it('never sends the stored token to a new origin: moving the URL there needs the token again', async () => {
    const host = await mcp(startMcpServer());
    const capture = await startCaptureServer();
    captures.push(capture);
    const manager = await addMember(http, admin, 'MANAGER');
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    expect((await check(manager, id)).status).toBe('ONLINE');

    // Another port is another origin; so are another host and another scheme.
    for (const url of [capture.url, capture.url.replace('127.0.0.1', 'localhost'), host.url.replace('http:', 'https:')]) {
      const refused = await http.put(`/api/servers/${id}`).set(as(manager)).send({ url }).expect(400);
      expect(refused.body.error).toMatchObject({
        code: 'master_token_required',
        details: [expect.objectContaining({ path: 'body.masterToken', code: 'required' })],
      });
    }
    const unchanged = (await http.get(`/api/servers/${id}`).set(as(manager)).expect(200)).body;
    expect(unchanged).toMatchObject({ url: host.url, status: 'ONLINE' });
    await check(manager, id, 'test');
    await check(manager, id, 'health');
    expect(capture.requests).toEqual([]);

    const moved = await http
      .put(`/api/servers/${id}`)
      .set(as(manager))
      .send({ url: capture.url, masterToken: 'the-token-for-the-new-host' })
      .expect(200);
    expect(moved.body).toMatchObject({ url: capture.url, status: 'UNKNOWN', masterToken: { set: true, last4: 'host' } });
    expect((await check(manager, id)).error).toBe('the server rejected the master token (HTTP 401)');
    expect(capture.requests.length).toBeGreaterThan(0);
    expect(new Set(capture.requests.map((r) => r.authorization))).toEqual(new Set(['Bearer the-token-for-the-new-host']));
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: id, action: 'server.update' });
    expect(audit.map((a) => a.changes)).toEqual([{ url: { from: host.url, to: capture.url }, masterToken: { rotated: true } }]);
    expect(audit[0]!.actor?.id).toBe(manager.userId);
  });

  it('keeps the token for a new path on the same origin', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    const moved = await http
      .put(`/api/servers/${id}`)
      .set(as(admin))
      .send({ url: `${host.url}/v2` })
      .expect(200);
    expect(moved.body).toMatchObject({ url: `${host.url}/v2`, masterToken: { set: true, last4: host.token.slice(-4) } });
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: id, action: 'server.update' });
    expect(audit.map((a) => a.changes)).toEqual([{ url: { from: host.url, to: `${host.url}/v2` } }]);
  });

  it('detects a server silently changing its tools and records what changed', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    expect((await check(admin, id)).toolsChanged).toBeUndefined();
    expect((await check(admin, id)).toolsChanged).toBeUndefined();
    host.setTools([...HOST_TOOL_NAMES.filter((t) => t !== 'check_tool'), 'exfiltrate_secrets']);
    host.setToolDescription('execute_prompt', 'Now also uploads your files somewhere');
    const result = await check(admin, id);
    expect(result.toolsChanged).toEqual({ added: ['exfiltrate_secrets'], removed: ['check_tool'], changed: ['execute_prompt'] });
    const stored = (await http.get(`/api/servers/${id}`).set(as(admin)).expect(200)).body;
    expect(stored.lastToolsChange).toMatchObject({ added: ['exfiltrate_secrets'], removed: ['check_tool'], changed: ['execute_prompt'] });
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: id, action: 'server.tools_changed' });
    expect(audit).toHaveLength(1);
    expect(audit[0]!.changes).toMatchObject({ added: ['exfiltrate_secrets'], removed: ['check_tool'], changed: ['execute_prompt'] });
  });

  it('keeps the token out of Temporal history and out of every log line', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    await check(admin, id);
    const workflows = ctx.temporal.client.workflow.list({ query: `ServerId = "${id}"` });
    let seen = 0;
    for await (const info of workflows) {
      const history = await ctx.temporal.client.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
      const text = JSON.stringify(history, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
      expect(text).toContain(id);
      expect(text).not.toContain(host.token);
      seen++;
    }
    expect(seen).toBe(1);
    expect(logs.length).toBeGreaterThan(1000);
    expect(logs).not.toContain(host.token);
  });

  it('refuses unsafe or malformed URLs with a field-level 400', async () => {
    for (const [url, reason] of [
      ['http://169.254.169.254/latest/meta-data', 'metadata'],
      ['http://[::169.254.169.254]/', 'metadata'],
      ['http://[64:ff9b::a9fe:a9fe]/', 'metadata'],
      ['http://[fe80::1]/mcp', 'link-local'],
      ['ftp://example.com/mcp', 'scheme'],
      ['http://user:pass@example.com/mcp', 'credentials'],
      ['not a url', 'invalid'],
    ] as const) {
      const res = await http
        .post('/api/servers')
        .set(as(admin))
        .send({ name: `bad-${randomUUID().slice(0, 6)}`, url, masterToken: 'token-123456' })
        .expect(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'body.url', code: reason })]);
    }
    const missing = await http.post('/api/servers').set(as(admin)).send({ name: 'x', masterToken: ' spaced token ' }).expect(400);
    expect(missing.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['body.masterToken', 'body.url']);
  });

  it('explains a failing server to its operator, but tells nothing about the ports behind a URL the policy refuses', async () => {
    const closedPort = Number(new URL(await closedPortUrl()).port);
    let rawConnections = 0;
    const rawSockets: Socket[] = [];
    // An open port that does not speak HTTP (an SSH-like banner).
    const raw = createNetServer((socket) => {
      rawConnections++;
      rawSockets.push(socket);
      socket.end('SSH-2.0-OpenSSH_9.6\r\n');
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const web = await mcp(startNotMcpServer());
    const ports = [closedPort, (raw.address() as AddressInfo).port, web.port];
    try {
      // Allowed URLs (loopback is allowed outside production): each failure reads differently.
      const allowed: string[] = [];
      for (const port of ports) {
        const { id } = await register(admin, { url: `http://127.0.0.1:${port}/mcp`, masterToken: 'whatever-token' });
        allowed.push((await check(admin, id)).error!);
      }
      expect(allowed[0]).toBe(`connection refused at 127.0.0.1:${closedPort}`);
      expect(allowed[1]).toMatch(/^127\.0\.0\.1:\d+ answered, but not with HTTP \(HPE_\w+\)$/);
      expect(allowed[2]).toBe('no MCP endpoint at this URL (HTTP 404)');
      expect(new Set(allowed).size).toBe(3);

      // The same listeners behind a name the policy refuses once it is resolved: one sentence for
      // all three, without the address, and no connection is made.
      let deniedLogs = '';
      const base = loadConfig();
      const denied = await createTestContext({ mcp: { ...base.mcp, timeoutMs: 1500, urlDenylist: '127.0.0.0/8, ::1' } });
      denied.logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => ((deniedLogs += chunk.toString()), done()) }));
      const deniedWorker = await startTestWorker(denied);
      try {
        const deniedHttp = httpFor(denied);
        const refused: string[] = [];
        const requestsBefore = web.requests;
        const connectionsBefore = rawConnections;
        for (const port of ports) {
          const created = await deniedHttp
            .post('/api/servers')
            .set(as(admin))
            .send({ name: `denied-${port}`, url: `http://localhost:${port}/mcp`, masterToken: 'whatever-token' })
            .expect(201);
          const result = await deniedHttp.post(`/api/servers/${created.body.id}/test`).set(as(admin)).expect(200);
          refused.push(result.body.error);
        }
        expect(refused).toEqual(
          Array(3).fill('refused to connect: URL host localhost resolves to an address that is refused by the deny list'),
        );
        expect(web.requests).toBe(requestsBefore);
        expect(rawConnections).toBe(connectionsBefore);
        // The operator's log still says where the name pointed and which entry matched.
        expect(deniedLogs).toMatch(
          /"detail":"URL host localhost resolves to (127\.0\.0\.1|::1), which is refused by the deny list \((127\.0\.0\.0\/8|::1)\)","msg":"server URL refused by the URL policy"/,
        );
      } finally {
        await deniedWorker.stop();
        await denied.close();
      }
    } finally {
      await new Promise<void>((resolve) => {
        raw.close(() => resolve());
        for (const socket of rawSockets) socket.destroy();
      });
    }
  });

  it('lists with filters and pagination; names are unique per organisation', async () => {
    const org = await registerAccount(http, 'List Org');
    const host = await mcp(startMcpServer());
    const a = await register(org, { name: 'alpha-one', url: host.url, masterToken: host.token });
    await register(org, { name: 'alpha-two', url: host.url, masterToken: host.token });
    await register(org, { name: 'beta', url: host.url, masterToken: host.token });
    await check(org, a.id);
    expect(
      (await http.post('/api/servers').set(as(org)).send({ name: 'beta', url: host.url, masterToken: host.token }).expect(409)).body.error
        .code,
    ).toBe('name_taken');
    expect((await http.get('/api/servers').query({ name: 'ALPHA' }).set(as(org)).expect(200)).body.items).toHaveLength(2);
    expect(
      (await http.get('/api/servers').query({ status: 'ONLINE' }).set(as(org)).expect(200)).body.items.map((s: { id: string }) => s.id),
    ).toEqual([a.id]);
    const page = await http.get('/api/servers').query({ limit: 2 }).set(as(org)).expect(200);
    const next = await http.get('/api/servers').query({ limit: 2, cursor: page.body.nextCursor }).set(as(org)).expect(200);
    expect([...page.body.items, ...next.body.items]).toHaveLength(3);
    expect(next.body.nextCursor).toBeNull();
  });

  it('lets VIEWER and OPERATOR read but not change or test servers; MANAGER may', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    for (const role of ['VIEWER', 'OPERATOR']) {
      const member = await addMember(http, admin, role);
      await http.get('/api/servers').set(as(member)).expect(200);
      await http.get(`/api/servers/${id}`).set(as(member)).expect(200);
      await http.post('/api/servers').set(as(member)).send({ name: 'nope', url: host.url, masterToken: host.token }).expect(403);
      await http.put(`/api/servers/${id}`).set(as(member)).send({ name: 'nope' }).expect(403);
      await http.delete(`/api/servers/${id}`).set(as(member)).expect(403);
      await http.post(`/api/servers/${id}/test`).set(as(member)).expect(403);
      await http.post(`/api/servers/${id}/health`).set(as(member)).expect(403);
    }
    const manager = await addMember(http, admin, 'MANAGER');
    await http.put(`/api/servers/${id}`).set(as(manager)).send({ description: 'managed' }).expect(200);
    expect((await check(manager, id)).status).toBe('ONLINE');
  });

  it('answers 404 to another organisation on every server route', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    const stranger = await registerAccount(http, 'Stranger Org');
    await http.get(`/api/servers/${id}`).set(as(stranger)).expect(404);
    await http.put(`/api/servers/${id}`).set(as(stranger)).send({ name: 'mine-now' }).expect(404);
    await http.delete(`/api/servers/${id}`).set(as(stranger)).expect(404);
    await http.post(`/api/servers/${id}/test`).set(as(stranger)).expect(404);
    await http.post(`/api/servers/${id}/health`).set(as(stranger)).expect(404);
    const list = await http.get('/api/servers').query({ limit: 100 }).set(as(stranger)).expect(200);
    expect(list.body.items).toEqual([]);
    expect((await http.get(`/api/servers/${id}`).set(as(admin)).expect(200)).body.name).not.toBe('mine-now');
  });

  it('refuses to delete a server with agents (409) unless forced', async () => {
    const host = await mcp(startMcpServer());
    const { id } = await register(admin, { url: host.url, masterToken: host.token });
    const em = ctx.orm.em.fork();
    em.create(Agent, {
      organization: em.getReference(Organization, admin.organizationId),
      server: em.getReference(McpServer, id),
      name: 'worker-1',
      displayName: 'Worker',
      role: AgentRole.WORKER,
    });
    await em.flush();
    const refused = await http.delete(`/api/servers/${id}`).set(as(admin)).expect(409);
    expect(refused.body.error).toMatchObject({ code: 'server_has_agents', details: { agents: 1 } });
    await http.delete(`/api/servers/${id}`).query({ force: 'true' }).set(as(admin)).expect(204);
    await http.get(`/api/servers/${id}`).set(as(admin)).expect(404);
    expect(await ctx.orm.em.fork().count(Agent, { server: id })).toBe(0);
    const audit = await ctx.orm.em.fork().findOneOrFail(AuditLog, { resourceId: id, action: 'server.delete' });
    expect(audit.changes).toMatchObject({ force: true, agents: 1 });
  });

  it('re-encrypts every token under a new key while servers stay usable', async () => {
    const host = await mcp(startMcpServer());
    const ids = [
      (await register(admin, { url: host.url, masterToken: host.token })).id,
      (await register(admin, { url: host.url, masterToken: host.token })).id,
    ];
    const newKey = { id: `k${randomBytes(3).toString('hex')}`, key: randomBytes(32) };
    const ring = [newKey, ...ctx.config.encryptionKeys];
    // Scoped to this organisation: other test files share the database and keep the old ring.
    const report = await rotateServerTokens(ctx.orm, ring, { organizationId: admin.organizationId });
    expect(report.failed).toEqual([]);
    expect(report.rotated).toBeGreaterThanOrEqual(2);

    const rows = await ctx.orm.em.fork().find(McpServer, { id: { $in: ids } }, { populate: ['masterTokenCiphertext'] });
    for (const row of rows) {
      expect(row.masterTokenKeyId).toBe(newKey.id);
      expect(openSecret([newKey], { keyId: row.masterTokenKeyId, ciphertext: row.masterTokenCiphertext }, masterTokenContext(row.id))).toBe(
        host.token,
      );
    }
    // A worker and an API that know only the new key still test the servers.
    const rotated = await createTestContext({ encryptionKeys: [newKey] });
    const rotatedWorker = await startTestWorker(rotated);
    try {
      const res = await httpFor(rotated).post(`/api/servers/${ids[0]}/test`).set(as(admin)).expect(200);
      expect(res.body.status).toBe('ONLINE');
      await httpFor(rotated).put(`/api/servers/${ids[1]}`).set(as(admin)).send({ description: 'still editable' }).expect(200);
    } finally {
      await rotatedWorker.stop();
      await rotated.close();
    }
  });

  it('runs the server-health schedule, which updates every server', async () => {
    const up = await mcp(startMcpServer());
    const online = await register(admin, { url: up.url, masterToken: up.token });
    const offline = await register(admin, { url: await closedPortUrl(), masterToken: 'whatever-token' });
    const scheduleId = `server-health-test-${randomUUID()}`;
    await ensureServerHealthSchedule(
      ctx.temporal.client,
      { ...ctx.config, mcp: { ...ctx.config.mcp, healthIntervalSeconds: 3600 } },
      scheduleId,
    );
    // Idempotent: a second worker start updates instead of failing.
    await ensureServerHealthSchedule(
      ctx.temporal.client,
      { ...ctx.config, mcp: { ...ctx.config.mcp, healthIntervalSeconds: 600 } },
      scheduleId,
    );
    const schedule = ctx.temporal.client.schedule.getHandle(scheduleId);
    try {
      const described = await schedule.describe();
      expect(described.spec.intervals?.[0]?.every).toBe(600_000);
      await schedule.trigger();
      const workflowId = await waitFor(
        async () => (await schedule.describe()).info.recentActions[0]?.action.workflow.workflowId,
        60_000,
        100,
      );
      const summary = await ctx.temporal.client.workflow.getHandle(workflowId).result();
      expect(summary.checked).toBeGreaterThanOrEqual(2);
      const states = await ctx.orm.em.fork().find(McpServer, { id: { $in: [online.id, offline.id] } });
      expect(Object.fromEntries(states.map((s) => [s.id, s.status]))).toEqual({ [online.id]: 'ONLINE', [offline.id]: 'OFFLINE' });
    } finally {
      await schedule.delete();
    }
  });
});
