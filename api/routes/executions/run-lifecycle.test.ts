import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { RequestContext } from '@mikro-orm/core';
import { Client, Connection } from '@temporalio/client';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Agent, Execution, ExecutionTrigger } from '../../../entities';
import { eventsAfter } from '../../../domain/runs/execution-log';
import { startExecution } from '../../../domain/runs/start-execution';
import { executionHandle } from '../../../domain/temporal';
import { listen, readJsonBody } from '../../../host/http';
import { AgentIdArgs, ExecutePromptArgs, ProvisionAgentArgs } from '../../../lib/host-contract';
import { progressQuery } from '../../../workflows/contracts/agent-execution';
import { httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, registerHost, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';

/**
 * A host written with the MCP SDK whose every text carries characters PostgreSQL cannot store
 * (NUL, a lone surrogate): the output, a todo, tool arguments and results, a progress message
 * and the structured answer.
 */
async function startNulHost(): Promise<{ url: string; token: string; close(): Promise<void> }> {
  const token = randomUUID();
  const build = () => {
    const mcp = new McpServer({ name: 'nul-host', version: '1.0.0' }, { capabilities: { logging: {} } });
    mcp.registerTool('provision_agent', { inputSchema: ProvisionAgentArgs }, async ({ agentId }) => ({
      content: [],
      structuredContent: { provisioned: true, agentId },
    }));
    mcp.registerTool('activate_agent', { inputSchema: AgentIdArgs }, async () => ({ content: [], structuredContent: { active: true } }));
    mcp.registerTool('execute_prompt', { inputSchema: ExecutePromptArgs }, async ({ executionId }, extra) => {
      const send = (data: Record<string, unknown>) =>
        extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: { executionId, ...data } } });
      await send({ type: 'output', text: 'before\u0000after ' });
      await send({ type: 'todo', todos: [{ id: 'clean', content: 'clean\u0000 up \ud800', status: 'completed' }] });
      await send({ type: 'tool_call', toolCallId: 'c1', name: 'shell', arguments: { 'command\u0000': 'printf "\\0"\u0000' } });
      await send({ type: 'tool_result', toolCallId: 'c1', name: 'shell', result: { stdout: '\u0000\udc00x' } });
      // Known types in a shape the contract does not have: dropped like unknown types.
      await send({ type: 'output', text: 42 });
      await send({ type: 'tool_call', toolCallId: 'c2', name: 'shell' });
      const progressToken = extra._meta?.progressToken;
      if (progressToken !== undefined)
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken, progress: 1, total: 1, message: 'step\u0000 one' },
        });
      return {
        content: [{ type: 'text', text: 'done\u0000' }],
        structuredContent: { success: true, output: 'before\u0000after done', tokensUsed: 3, data: { 'note\u0000': 'a\u0000b' } },
      };
    });
    return mcp;
  };
  const server = createServer((req, res) => {
    void (async () => {
      if (req.headers.authorization !== `Bearer ${token}`) return void res.writeHead(401).end();
      if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST' }).end();
      const parsed = await readJsonBody(req, res);
      if (!parsed) return;
      // Stateless: a server and a transport per request, as a serverless host would run.
      const mcp = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void mcp.close());
      await mcp.connect(transport);
      await transport.handleRequest(req, res, parsed.body);
    })();
  });
  const port = await listen(server, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('the run lifecycle', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Lifecycle Org');
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await worker?.stop();
    await ctx?.close();
  });

  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  async function finished(executionId: string, timeoutMs = 60_000, everyMs = 50): Promise<Record<string, unknown>> {
    return waitFor(
      async () => {
        const res = await http.get(`/api/executions/${executionId}`).set(as());
        return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(res.body.status)
          ? (res.body as Record<string, unknown>)
          : undefined;
      },
      timeoutMs,
      everyMs,
    );
  }

  it('stores what a host sends with NUL characters and lone surrogates, without them, and drops malformed messages', async () => {
    const host = await startNulHost();
    closers.push(() => host.close());
    const server = await http
      .post('/api/servers')
      .set(as())
      .send({ name: `nul-${randomUUID().slice(0, 6)}`, url: host.url, masterToken: host.token })
      .expect(201);
    const agent = await activeAgent(http, admin, server.body.id);
    const started = await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt: 'say something odd' }).expect(202);
    const done = await finished(started.body.executionId);
    expect(done).toMatchObject({
      status: 'COMPLETED',
      output: 'beforeafter done',
      tokensUsed: 3,
      todos: [{ id: 'clean', content: 'clean up ', status: 'completed' }],
    });
    const row = await ctx.orm.em.fork().findOneOrFail(Execution, started.body.executionId);
    expect(row.result).toEqual({ success: true, output: 'beforeafter done', tokensUsed: 3, data: { note: 'ab' } });
    const events = await eventsAfter(ctx.orm.em.fork(), started.body.executionId, 0);
    expect(events.map((e) => e.phase)).toEqual(['status', 'status', 'output', 'todo', 'tool_call', 'tool_result', 'progress', 'status']);
    expect(events.find((e) => e.phase === 'output')!.output).toBe('beforeafter ');
    expect(events.find((e) => e.phase === 'tool_call')!.toolCall).toEqual({
      toolCallId: 'c1',
      name: 'shell',
      arguments: { command: 'printf "\\0"' },
    });
    expect(events.find((e) => e.phase === 'tool_result')!.toolCall).toEqual({ toolCallId: 'c1', name: 'shell', result: { stdout: 'x' } });
    expect(events.find((e) => e.phase === 'progress')!.progress).toEqual({ progress: 1, total: 1, message: 'step one' });
  });

  it('marks a run FAILED and gives its slot back when Temporal refuses to start it', async () => {
    const { serverId, host } = await registerHost(http, admin);
    closers.push(() => host.close());
    const { id } = await activeAgent(http, admin, serverId);
    const connection = await Connection.connect({ address: ctx.config.temporal.address! });
    const closed = new Client({ connection, namespace: ctx.config.temporal.namespace });
    await connection.close();
    const em = ctx.orm.em.fork();
    const agent = await em.findOneOrFail(Agent, id, { populate: ['server'] });
    const actor = { userId: admin.userId, organizationId: admin.organizationId, via: 'api' as const };
    const refused = RequestContext.create(ctx.orm.em, () =>
      startExecution({ ...ctx, temporal: { client: closed, taskQueue: ctx.config.temporal.taskQueue } }, actor, {
        agent,
        prompt: 'never runs',
        trigger: ExecutionTrigger.API,
      }),
    );
    await expect(refused).rejects.toMatchObject({ status: 503, code: 'temporal_unavailable' });
    const execution = await ctx.orm.em.fork().findOneOrFail(Execution, { agent: id });
    expect(execution).toMatchObject({ status: 'FAILED', error: 'the run could not be started (Temporal unavailable)' });
    const events = await eventsAfter(ctx.orm.em.fork(), execution.id, 0);
    expect(events.map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'FAILED']);
    expect((await http.get(`/api/agents/${id}/status`).set(as()).expect(200)).body).toMatchObject({
      status: 'ACTIVE',
      running: 0,
      queued: 0,
    });
  });

  it('a run whose recording fails after its workflow started never reaches the host: the workflow finds no row and ends', async () => {
    const { serverId, host } = await registerHost(http, admin);
    closers.push(() => host.close());
    const { id } = await activeAgent(http, admin, serverId);
    const agent = await ctx.orm.em.fork().findOneOrFail(Agent, id, { populate: ['server'] });
    const actor = { userId: admin.userId, organizationId: admin.organizationId, via: 'api' as const };
    // PostgreSQL stores no NUL in text: the row's insert fails after the workflow's start went out.
    const failing = RequestContext.create(ctx.orm.em, () =>
      startExecution(ctx, actor, { agent, prompt: 'never\u0000 recorded', trigger: ExecutionTrigger.API }),
    );
    await expect(failing).rejects.toThrow();
    expect(await ctx.orm.em.fork().count(Execution, { agent: id })).toBe(0);
    // Its workflow started all the same (the start overlaps the transaction), and ends on its own.
    let workflowId: string | undefined;
    await waitFor(async () => {
      for await (const run of ctx.temporal.client.workflow.list({ query: `AgentId = "${id}" and WorkflowType = "agentExecution"` }))
        workflowId = run.workflowId;
      return workflowId !== undefined;
    }, 30_000);
    const ended = await ctx.temporal.client.workflow
      .getHandle(workflowId!)
      .result()
      .then(
        (result: unknown) => result,
        (error: Error) => (error.cause as Error | undefined)?.message ?? error.message,
      );
    expect(JSON.stringify(ended)).toMatch(/no longer exists/);
    expect(host.calls.filter((c) => c.tool === 'execute_prompt')).toEqual([]);
    expect((await http.get(`/api/agents/${id}/status`).set(as()).expect(200)).body).toMatchObject({
      status: 'ACTIVE',
      running: 0,
      queued: 0,
    });
  });

  it('keeps the workflow history of a 10,000-event run to a few hundred events', async () => {
    const { serverId, host } = await registerHost(http, admin);
    closers.push(() => host.close());
    const agent = await activeAgent(http, admin, serverId);
    const steps = 5000;
    const began = Date.now();
    const started = await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(as())
      .send({ prompt: `chatty [steps:${steps}] [delay:0]` })
      .expect(202);
    const executionId = started.body.executionId as string;
    // Polled slowly: each read of a running execution is a query its worker answers.
    const done = await finished(executionId, 280_000, 1000);
    const seconds = (Date.now() - began) / 1000;
    expect(done).toMatchObject({ status: 'COMPLETED' });
    // QUEUED, RUNNING, an output and a progress event per step, COMPLETED.
    const logged = (done.progress as { seq: number }).seq;
    expect(logged).toBe(2 * steps + 3);

    const handle = executionHandle(ctx.temporal, executionId);
    // The row is COMPLETED when finishExecution returns; the workflow ends one task later.
    await handle.result();
    const history = await handle.fetchHistory();
    const signals = history.events!.filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    console.log(
      `10,000-event run: ${logged} events logged in ${seconds.toFixed(1)} s → ${signals} progress signals, ${history.events!.length} workflow history events`,
    );
    expect(history.events!.length).toBeLessThanOrEqual(200);

    // The last signal carried the final state: the query agrees with the log.
    const progress = await handle.query(progressQuery);
    expect(progress).toMatchObject({ status: 'COMPLETED', seq: logged - 1 });
    expect(progress.outputTail.endsWith(`chunk ${steps}\n`)).toBe(true);
  }, 300_000);
});
