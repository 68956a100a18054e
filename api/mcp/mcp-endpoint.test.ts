import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import type { AgentHost } from '../../host/server';
import { createApp } from '../app';
import { startApiServer, type ApiServer } from '../server';
import { registerAccount, type Account, type Http } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';

describe('the MCP endpoint (POST /mcp)', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let agent: { id: string; name: string };
  let serverId: string;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'MCP Org');
    ({ host, serverId } = await registerHost(http, admin));
    closers.push(() => host.close());
    agent = await activeAgent(http, admin, serverId);
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  async function createKey(
    account: Account,
    body: Record<string, unknown> = {},
  ): Promise<{ id: string; key: string; prefix: string; name: string }> {
    const res = await http
      .post('/api/api-keys')
      .auth(account.accessToken, { type: 'bearer' })
      .send({ name: `mcp ${randomUUID().slice(0, 6)}`, ...body })
      .expect(201);
    return res.body;
  }

  async function connect(token: string): Promise<Client> {
    const client = new Client({ name: 'mcp-fleet-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL('/mcp', api.url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    closers.push(() => client.close());
    // As MCP clients do: with the tool list read, the SDK checks each result against its tool's outputSchema.
    await client.listTools();
    return client;
  }

  const json = (result: unknown) => JSON.parse(((result as CallToolResult).content[0] as { text: string }).text);
  const errorText = (result: unknown) => {
    expect((result as CallToolResult).isError).toBe(true);
    return ((result as CallToolResult).content[0] as { text: string }).text;
  };

  it("lists the organisation's agents and servers to a key's client", async () => {
    const { key } = await createKey(admin);
    const client = await connect(key);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual([
      'list_agents',
      'list_servers',
      'list_tasks',
      'get_execution',
      'execute_prompt',
      'run_task',
      'cancel_execution',
      'list_waiting_inputs',
      'answer_input',
    ]);
    // The input schema is the REST route's zod schema.
    expect(tools.find((t) => t.name === 'execute_prompt')!.inputSchema.required).toEqual(['agent', 'prompt']);

    const agents = await client.callTool({ name: 'list_agents', arguments: {} });
    expect(json(agents).items.map((a: { id: string }) => a.id)).toEqual([agent.id]);
    expect(agents.structuredContent).toEqual(json(agents));
    const byName = await client.callTool({ name: 'list_agents', arguments: { q: agent.name.slice(0, 10) } });
    expect(json(byName).items).toHaveLength(1);
    const servers = await client.callTool({ name: 'list_servers', arguments: {} });
    expect(json(servers).items).toHaveLength(1);
    // A bad argument is a tool error naming the field, not a crash.
    const bad = await client.callTool({ name: 'list_agents', arguments: { limit: 1000 } });
    expect(errorText(bad)).toMatch(/limit/);
  });

  async function createTask(account: Account, body: Record<string, unknown>): Promise<{ id: string; title: string }> {
    const res = await http
      .post('/api/tasks')
      .auth(account.accessToken, { type: 'bearer' })
      .send({ title: `mcp task ${randomUUID().slice(0, 8)}`, ...body })
      .expect(201);
    return res.body;
  }

  it("declares every tool's outputSchema from its REST route's response schema, and every result fits it", async () => {
    const { key } = await createKey(admin);
    const client = await connect(key);
    const { tools } = await client.listTools();
    const schemas = Object.fromEntries(tools.map((t) => [t.name, t.outputSchema]));
    // Structured content is an object (a page wraps its items), with the REST answer's required fields.
    expect(Object.fromEntries(tools.map((t) => [t.name, t.outputSchema?.type]))).toEqual(
      Object.fromEntries(tools.map((t) => [t.name, 'object'])),
    );
    expect(schemas.list_agents!.required).toEqual(['items', 'nextCursor']);
    expect(schemas.list_servers!.required).toEqual(['items', 'nextCursor']);
    expect(schemas.list_tasks!.required).toEqual(['items', 'nextCursor']);
    expect(schemas.run_task!.required).toEqual(['executionId', 'workflowId', 'status']);
    expect(schemas.get_execution!.required).toEqual(expect.arrayContaining(['id', 'status', 'output', 'progress', 'pendingInput']));
    expect(schemas.execute_prompt!.required).toEqual(['executionId', 'status', 'output']);
    expect(schemas.cancel_execution!.required).toEqual(['executionId', 'workflowId']);
    expect(schemas.answer_input!.required).toEqual(['inputId', 'status']);
    expect(schemas.list_waiting_inputs!.required).toEqual(['items', 'nextCursor']);

    // Checked here as any client would (the SDK's own validator), beside the SDK's check in callTool.
    const validator = new AjvJsonSchemaValidator();
    const fits = (tool: string, result: unknown) => {
      const checked = validator.getValidator(schemas[tool] as never)((result as CallToolResult).structuredContent);
      expect({ tool, problem: checked.errorMessage }).toEqual({ tool, problem: undefined });
      return (result as CallToolResult).structuredContent as Record<string, unknown>;
    };
    fits('list_agents', await client.callTool({ name: 'list_agents', arguments: { limit: 1 } }));
    fits('list_servers', await client.callTool({ name: 'list_servers', arguments: {} }));
    const task = await createTask(admin, { agentId: agent.id, prompt: 'fit task [steps:1]' });
    expect(fits('list_tasks', await client.callTool({ name: 'list_tasks', arguments: {} })).items).not.toEqual([]);
    fits('run_task', await client.callTool({ name: 'run_task', arguments: { taskId: task.id } }));
    const run = fits(
      'execute_prompt',
      await client.callTool({ name: 'execute_prompt', arguments: { agent: agent.id, prompt: 'fit [steps:1]' } }, undefined, {
        timeout: 120_000,
      }),
    );
    expect(run.status).toBe('COMPLETED');
    const detail = fits('get_execution', await client.callTool({ name: 'get_execution', arguments: { executionId: run.executionId } }));
    expect(detail.progress).toMatchObject({ status: 'COMPLETED' });
    fits('list_waiting_inputs', await client.callTool({ name: 'list_waiting_inputs', arguments: {} }));
  });

  it('runs a prompt by agent name to completion, with progress notifications, audited as the key', async () => {
    const created = await createKey(admin, { name: 'claude code' });
    const client = await connect(created.key);
    const progress: Progress[] = [];
    const prompt = `Summarise ${randomUUID()}`;
    const result = await client.callTool({ name: 'execute_prompt', arguments: { agent: agent.name, prompt } }, undefined, {
      onprogress: (p) => progress.push(p),
      resetTimeoutOnProgress: true,
      timeout: 120_000,
    });
    const done = json(result);
    expect(done).toEqual({
      executionId: expect.any(String),
      status: 'COMPLETED',
      output: `script engine: ${prompt}`,
      // The host's structured result.
      data: { output: `script engine: ${prompt}`, success: true },
    });
    expect(progress.map((p) => p.message)).toEqual(expect.arrayContaining(['status: QUEUED', 'status: RUNNING', 'status: COMPLETED']));
    expect(progress.map((p) => p.progress)).toEqual([...progress.map((p) => p.progress)].sort((a, b) => a - b));
    // The same domain command as REST: the host got the prompt, the audit log names the key.
    expect(host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === done.executionId)!.args.prompt).toBe(prompt);
    const audit = await http.get(`/api/audit?resourceId=${done.executionId}`).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    expect(audit.body.items[0].actor).toEqual({
      id: admin.userId,
      email: admin.email,
      apiKey: { id: created.id, name: 'claude code', prefix: created.prefix },
    });

    const fetched = json(await client.callTool({ name: 'get_execution', arguments: { executionId: done.executionId } }));
    expect(fetched).toMatchObject({ id: done.executionId, status: 'COMPLETED', output: `script engine: ${prompt}`, pendingInput: null });

    // wait: false answers at once, with the run's id and its status then (any: the run races the answer).
    const started = json(await client.callTool({ name: 'execute_prompt', arguments: { agent: agent.id, prompt: 'later', wait: false } }));
    expect(started).toMatchObject({ executionId: expect.any(String), status: expect.any(String) });
    expect(started.executionId).not.toBe(done.executionId);
  });

  it('a VIEWER key lists but cannot run a prompt', async () => {
    const { key } = await createKey(admin, { role: 'VIEWER' });
    const client = await connect(key);
    expect(json(await client.callTool({ name: 'list_agents', arguments: {} })).items.map((a: { id: string }) => a.id)).toContain(agent.id);
    const refused = await client.callTool({ name: 'execute_prompt', arguments: { agent: agent.id, prompt: 'no' } });
    expect(errorText(refused)).toMatch(/^forbidden/);
    const running = json(
      await (
        await connect((await createKey(admin)).key)
      ).callTool({ name: 'execute_prompt', arguments: { agent: agent.id, prompt: 'x', wait: false } }),
    );
    const cancel = await client.callTool({ name: 'cancel_execution', arguments: { executionId: running.executionId } });
    expect(errorText(cancel)).toMatch(/^forbidden/);
    const answer = await client.callTool({ name: 'answer_input', arguments: { executionId: running.executionId, action: 'decline' } });
    expect(errorText(answer)).toMatch(/^forbidden/);
  });

  it("another organisation's agent and execution are not found", async () => {
    const other = await registerAccount(http, 'Other MCP Org');
    const server = await http
      .post('/api/servers')
      .auth(other.accessToken, { type: 'bearer' })
      .send({ name: `other-${randomUUID().slice(0, 8)}`, url: host.url, masterToken: host.token })
      .expect(201);
    const foreign = await http
      .post('/api/agents')
      .auth(other.accessToken, { type: 'bearer' })
      .send({ serverId: server.body.id, name: agent.name })
      .expect(201);
    const { key } = await createKey(admin);
    const client = await connect(key);
    const byId = await client.callTool({ name: 'execute_prompt', arguments: { agent: foreign.body.id, prompt: 'x' } });
    expect(errorText(byId)).toBe('Agent: not found');
    // By name, the caller's own agent of that name is the one found, never the other's.
    const mine = json(await client.callTool({ name: 'execute_prompt', arguments: { agent: agent.name, prompt: 'mine', wait: false } }));
    const run = json(await client.callTool({ name: 'get_execution', arguments: { executionId: mine.executionId } }));
    expect(run.agentId).toBe(agent.id);
    const otherKey = await createKey(other);
    const otherClient = await connect(otherKey.key);
    const foreignRun = await otherClient.callTool({ name: 'get_execution', arguments: { executionId: mine.executionId } });
    expect(errorText(foreignRun)).toBe('Execution: not found');
    expect(json(await otherClient.callTool({ name: 'list_agents', arguments: {} })).items.map((a: { id: string }) => a.id)).toEqual([
      foreign.body.id,
    ]);
  });

  it("list_tasks lists the organisation's tasks as GET /api/tasks does, to every role, and never another organisation's", async () => {
    const nightly = await createTask(admin, { title: `nightly ${randomUUID().slice(0, 8)}`, agentId: agent.id, prompt: 'nightly' });
    const weekly = await createTask(admin, {
      title: `weekly ${randomUUID().slice(0, 8)}`,
      agentId: agent.id,
      prompt: 'weekly',
      executionMode: 'RECURRING',
      cronExpression: '0 9 * * 1',
      timezone: 'Europe/Paris',
      enabled: false,
    });
    const other = await registerAccount(http, 'Other Tasks Org');
    await createTask(other, { title: nightly.title, assignmentMode: 'AUTO', prompt: 'theirs' });

    const viewer = await connect((await createKey(admin, { role: 'VIEWER' })).key);
    const listed = json(await viewer.callTool({ name: 'list_tasks', arguments: { text: nightly.title } }));
    const rest = await http.get('/api/tasks').query({ text: nightly.title }).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    // The same page as the REST route, field for field: one query and one presenter.
    expect(listed).toEqual(rest.body);
    expect(listed.items.map((t: { id: string }) => t.id)).toEqual([nightly.id]);
    const recurring = json(await viewer.callTool({ name: 'list_tasks', arguments: { executionMode: 'RECURRING', enabled: 'false' } }));
    expect(recurring.items.map((t: { id: string }) => t.id)).toEqual([weekly.id]);
    expect(recurring.items[0]).toMatchObject({
      cronExpression: '0 9 * * 1',
      scheduleId: `task-${weekly.id}`,
      nextRunTimes: expect.any(Array),
    });
    const paged = json(await viewer.callTool({ name: 'list_tasks', arguments: { limit: 1 } }));
    expect(paged.items).toHaveLength(1);
    expect(paged.nextCursor).toEqual(expect.any(String));
    expect(errorText(await viewer.callTool({ name: 'list_tasks', arguments: { kind: 'nope' } }))).toMatch(/kind/);
  });

  it("run_task runs a task now as POST /api/tasks/:id/run does: an OPERATOR key runs it, a VIEWER key cannot, another organisation's task is not found", async () => {
    const task = await createTask(admin, { agentId: agent.id, prompt: `task run ${randomUUID()} [steps:1]` });
    const viewer = await connect((await createKey(admin, { role: 'VIEWER' })).key);
    expect(errorText(await viewer.callTool({ name: 'run_task', arguments: { taskId: task.id } }))).toMatch(/^forbidden/);

    const operatorKey = await createKey(admin, { role: 'OPERATOR', name: 'task runner' });
    const operator = await connect(operatorKey.key);
    const started = json(await operator.callTool({ name: 'run_task', arguments: { taskId: task.id } }));
    expect(started).toEqual({ executionId: expect.any(String), workflowId: expect.stringContaining(task.id), status: expect.any(String) });
    const done = await waitFor(async () => {
      const run = json(await operator.callTool({ name: 'get_execution', arguments: { executionId: started.executionId } }));
      return run.status === 'COMPLETED' ? run : undefined;
    });
    expect(done).toMatchObject({ taskId: task.id, agentId: agent.id, trigger: 'manual' });
    // The same domain command as REST: audited as task.run, naming the key.
    const audit = await http.get(`/api/audit?resourceId=${task.id}`).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    const entry = audit.body.items.find((e: { action: string }) => e.action === 'task.run');
    expect(entry.actor.apiKey).toEqual({ id: operatorKey.id, name: 'task runner', prefix: operatorKey.prefix });
    expect(entry.changes).toEqual({ executionId: started.executionId });

    const paused = await createTask(admin, { agentId: agent.id, prompt: 'never', enabled: false });
    expect(errorText(await operator.callTool({ name: 'run_task', arguments: { taskId: paused.id } }))).toMatch(/^task_disabled/);

    const other = await registerAccount(http, 'Other Run Org');
    const foreign = await createTask(other, { assignmentMode: 'AUTO', prompt: 'theirs' });
    expect(errorText(await operator.callTool({ name: 'run_task', arguments: { taskId: foreign.id } }))).toBe('Task: not found');
    expect(errorText(await operator.callTool({ name: 'run_task', arguments: { taskId: randomUUID() } }))).toBe('Task: not found');
  });

  it('refuses a JWT, no token, and a revoked key at once with 401 and WWW-Authenticate: Bearer', async () => {
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
    };
    const post = () => http.post('/mcp').set('Accept', 'application/json, text/event-stream').send(initialize);
    const jwt = await post().auth(admin.accessToken, { type: 'bearer' }).expect(401);
    expect(jwt.body.error.code).toBe('api_key_required');
    expect(jwt.headers['www-authenticate']).toBe('Bearer');
    const none = await post().expect(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');

    const created = await createKey(admin);
    const client = await connect(created.key);
    expect(json(await client.callTool({ name: 'list_agents', arguments: {} })).items.length).toBeGreaterThan(0);
    await http.delete(`/api/api-keys/${created.id}`).auth(admin.accessToken, { type: 'bearer' }).expect(204);
    // The very next call of the connected client is refused: stateless, every request is authenticated.
    await expect(client.callTool({ name: 'list_agents', arguments: {} })).rejects.toThrow(/api_key_revoked/);
    const revoked = await post().auth(created.key, { type: 'bearer' }).expect(401);
    expect(revoked.body.error.code).toBe('api_key_revoked');
    expect(revoked.headers['www-authenticate']).toBe('Bearer');
  });

  it('is rate limited per user by the mcp rules: 429 with Retry-After past the limit', async () => {
    const limited = request(
      createApp({
        ...ctx,
        config: { ...ctx.config, rateLimits: { ...ctx.config.rateLimits, 'mcp.user': { limit: 2, windowSeconds: 60 } } },
      }).callback(),
    );
    // An account of its own: the per-user counter starts at zero.
    const { key } = await createKey(await registerAccount(http, 'MCP Limits Org'));
    const list = () =>
      limited
        .post('/mcp')
        .auth(key, { type: 'bearer' })
        .set('Accept', 'application/json, text/event-stream')
        .send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    await list().expect(200);
    await list().expect(200);
    const refused = await list().expect(429);
    expect(refused.body.error).toMatchObject({ code: 'rate_limited', details: { rule: 'mcp.user', limit: 2 } });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('GET and DELETE /mcp answer 405: the endpoint keeps no sessions', async () => {
    const { key } = await createKey(admin);
    for (const method of ['get', 'delete'] as const) {
      const res = await http[method]('/mcp').auth(key, { type: 'bearer' }).expect(405);
      expect(res.headers.allow).toBe('OPTIONS, POST');
    }
  });

  it('cancel_execution ends a run that execute_prompt is waiting on: the wait returns CANCELLED', async () => {
    const hanging = await activeAgent(http, admin, serverId);
    const { key } = await createKey(admin);
    const waiter = await connect(key);
    const progress: Progress[] = [];
    const waiting = waiter.callTool({ name: 'execute_prompt', arguments: { agent: hanging.id, prompt: 'wait for me [hang]' } }, undefined, {
      onprogress: (p) => progress.push(p),
      resetTimeoutOnProgress: true,
      timeout: 120_000,
    });
    const call = await host.waitForCall('execute_prompt', (c) => c.args.agentId === hanging.id);
    const executionId = call.args.executionId as string;
    await waitFor(async () => progress.some((p) => p.message === 'status: RUNNING'));
    const other = await connect(key);
    const cancelled = json(await other.callTool({ name: 'cancel_execution', arguments: { executionId } }));
    expect(cancelled).toEqual({ executionId, workflowId: `execution-${executionId}` });
    await host.waitForCancellation(executionId, 30_000);
    expect(json(await waiting)).toEqual({ executionId, status: 'CANCELLED', output: expect.anything(), error: 'cancelled by request' });
    const again = await other.callTool({ name: 'cancel_execution', arguments: { executionId } });
    expect(errorText(again)).toMatch(/^already_finished/);
  });

  it('answer_input answers the question of a run execute_prompt waits on; the run completes with the answer', async () => {
    const asking = await activeAgent(http, admin, serverId);
    const { key } = await createKey(admin);
    const waiter = await connect(key);
    const waiting = waiter.callTool(
      { name: 'execute_prompt', arguments: { agent: asking.id, prompt: 'deploy [ask:Which branch?]' } },
      undefined,
      {
        onprogress: () => undefined,
        resetTimeoutOnProgress: true,
        timeout: 120_000,
      },
    );
    const call = await host.waitForCall('execute_prompt', (c) => c.args.agentId === asking.id);
    const executionId = call.args.executionId as string;
    const other = await connect(key);
    const pending = await waitFor(async () => {
      const run = json(await other.callTool({ name: 'get_execution', arguments: { executionId } }));
      return run.status === 'WAITING_INPUT' && run.pendingInput ? run.pendingInput : undefined;
    });
    expect(pending.message).toBe('Which branch?');
    const bad = await other.callTool({ name: 'answer_input', arguments: { executionId, action: 'maybe' } });
    expect(errorText(bad)).toMatch(/action/);
    const answered = json(
      await other.callTool({ name: 'answer_input', arguments: { executionId, action: 'accept', content: { answer: 'main' } } }),
    );
    expect(answered).toEqual({ inputId: pending.inputId, status: 'ANSWERED' });
    const done = json(await waiting);
    expect(done).toMatchObject({ executionId, status: 'COMPLETED' });
    expect(done.output).toContain('main');
    const again = await other.callTool({ name: 'answer_input', arguments: { executionId, action: 'decline' } });
    expect(errorText(again)).toMatch(/^no_pending_input/);
  });

  it('list_waiting_inputs lists the runs waiting on a question with the question, to every role of the organisation and no other', async () => {
    const asking = await activeAgent(http, admin, serverId);
    const { key } = await createKey(admin);
    const operator = await connect(key);
    const question = `Which region? ${randomUUID().slice(0, 8)}`;
    const started = json(
      await operator.callTool({ name: 'execute_prompt', arguments: { agent: asking.id, prompt: `deploy [ask:${question}]`, wait: false } }),
    );
    const viewer = await connect((await createKey(admin, { role: 'VIEWER' })).key);
    const waiting = await waitFor(async () => {
      const page = json(await viewer.callTool({ name: 'list_waiting_inputs', arguments: { agentId: asking.id } }));
      return page.items.find((r: { id: string; pendingInput: unknown }) => r.id === started.executionId && r.pendingInput);
    });
    expect(waiting).toMatchObject({
      id: started.executionId,
      agentId: asking.id,
      status: 'WAITING_INPUT',
      pendingInput: { inputId: expect.any(String), message: question, requestedSchema: expect.any(Object), expiresAt: expect.any(String) },
    });
    // As GET /api/executions/:id shows the question; and only waiting runs are listed.
    const rest = await http.get(`/api/executions/${started.executionId}`).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    expect(waiting.pendingInput).toEqual(rest.body.pendingInput);
    const all = json(await viewer.callTool({ name: 'list_waiting_inputs', arguments: { limit: 100 } }));
    expect(all.items.map((r: { status: string }) => r.status)).toEqual(all.items.map(() => 'WAITING_INPUT'));
    expect(json(await viewer.callTool({ name: 'list_waiting_inputs', arguments: { agentId: agent.id } })).items).toEqual([]);

    const stranger = await connect((await createKey(await registerAccount(http, 'Other Inputs Org'))).key);
    expect(json(await stranger.callTool({ name: 'list_waiting_inputs', arguments: {} })).items).toEqual([]);

    await operator.callTool({
      name: 'answer_input',
      arguments: { executionId: started.executionId, action: 'accept', content: { answer: 'eu' } },
    });
    await waitFor(async () => {
      const page = json(await viewer.callTool({ name: 'list_waiting_inputs', arguments: { agentId: asking.id } }));
      return page.items.length === 0;
    });
  });
});
