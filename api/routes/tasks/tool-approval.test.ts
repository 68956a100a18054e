/**
 * The approval gate of a `kind: tool` task: a tool granted with `requiresApproval` is asked
 * about (WAITING_INPUT, the reference host's question and form) before anything is sent to the
 * agent's server, here a real MCP server (official SDK) that records every tools/call.
 */
import { randomUUID } from 'node:crypto';
import { ExecutionInput, ExecutionInputStatus } from '../../../entities';
import { APPROVAL_SCHEMA as HOST_APPROVAL_SCHEMA } from '../../../host/runner';
import { APPROVAL_SCHEMA } from '../../../domain/runs/tool-approval';
import { loadConfig } from '../../../lib/config';
import { httpFor, registerAccount } from '../../../test/api';
import { activeAgent, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker } from '../../../test/harness';
import { HOST_TOOL_NAMES, startMcpServer } from '../../../test/mcp-servers';
import { taskApi, type Run } from '../../../test/tasks';

/** A stack of its own (context, worker, organisation, recording MCP server with a `deploy` tool). */
async function gatedStack(overrides: Parameters<typeof createTestContext>[0] = {}) {
  const ctx = await createTestContext(overrides);
  let worker = await startTestWorker(ctx);
  const http = httpFor(ctx);
  const admin = await registerAccount(http, 'Tool Approval Org');
  const server = await startMcpServer({ tools: [...HOST_TOOL_NAMES, 'deploy'] });
  const auth = { Authorization: `Bearer ${admin.accessToken}` };
  const registered = await http
    .post('/api/servers')
    .set(auth)
    .send({ name: `recording-${server.port}`, url: server.url, masterToken: server.token })
    .expect(201);
  // The check pins the server's tools/list: `deploy` is then available to grants and to tasks.
  await http.post(`/api/servers/${registered.body.id}/test`).set(auth).expect(200);
  const deploy = (
    await http
      .post('/api/tools')
      .set(auth)
      .send({ name: 'deploy', category: 'mcp', installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' })
      .expect(201)
  ).body as { id: string };
  const tasks = taskApi(http, admin);
  return {
    ctx,
    http,
    admin,
    server,
    tasks,
    restartWorker: async (between: () => Promise<unknown>) => {
      await worker.stop();
      await between();
      worker = await startTestWorker(ctx);
    },
    /** A new agent granted `deploy` (with or without the gate) and a tool task calling it. */
    async gatedTask(requiresApproval = true) {
      const agent = await activeAgent(http, admin, registered.body.id);
      await http
        .put(`/api/tools/agent/${agent.id}/permissions`)
        .set(auth)
        .send({ permissions: [{ toolId: deploy.id, canUse: true, requiresApproval }] })
        .expect(200);
      // Arguments of its own, to tell its calls from the other tests'.
      const target = `prod-${randomUUID().slice(0, 8)}`;
      const task = await tasks.create({ agentId: agent.id, kind: 'tool', toolName: 'deploy', toolArguments: { name: target } });
      return { agent, task, target, calls: () => server.calls.filter((c) => c.tool === 'deploy' && c.args.name === target) };
    },
    answer: (executionId: string, body: Record<string, unknown>) => http.post(`/api/executions/${executionId}/input`).set(auth).send(body),
    events: async (executionId: string) =>
      (await http.get(`/api/executions/${executionId}/events`).query({ limit: 100 }).set(auth).expect(200)).body.items as Record<
        string,
        unknown
      >[],
    async close() {
      await worker.stop();
      await server.close();
      await ctx.close();
    },
  };
}

type Stack = Awaited<ReturnType<typeof gatedStack>>;

/** The run waiting for its approval, with its question (after checking nothing reached the server). */
async function waitingForApproval(
  stack: Stack,
  executionId: string,
): Promise<Run & { pendingInput: { inputId: string; message: string; requestedSchema: unknown } }> {
  const run = (await stack.tasks.waitStatus(executionId, 'WAITING_INPUT', 30_000)) as Run & {
    pendingInput: { inputId: string; message: string; requestedSchema: unknown } | null;
  };
  expect(run.pendingInput).not.toBeNull();
  return run as Run & { pendingInput: { inputId: string; message: string; requestedSchema: unknown } };
}

const phases = (events: Record<string, unknown>[]) => events.map((e) => [e.phase, e.status ?? null]);

describe('tool tasks: the approval gate of a gated tool', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await gatedStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('asks with the host’s own form', () => {
    expect(APPROVAL_SCHEMA).toEqual(HOST_APPROVAL_SCHEMA);
  });

  it('waits WAITING_INPUT with nothing sent; approved, the tool is called once and the run COMPLETES', async () => {
    const { agent, task, target, calls } = await stack.gatedTask();
    const id = await stack.tasks.run(task.id);
    const asked = await waitingForApproval(stack, id);
    expect(asked.pendingInput).toMatchObject({
      message: `Agent ${agent.name} wants to run: deploy {"name":"${target}"}`,
      requestedSchema: APPROVAL_SCHEMA,
    });
    expect(calls()).toHaveLength(0);

    await stack.answer(id, { action: 'accept', content: { approve: true } }).expect(200);
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'COMPLETED', error: null });
    expect(calls()).toEqual([{ tool: 'deploy', args: { name: target } }]);
    expect(phases(await stack.events(id))).toEqual([
      ['status', 'QUEUED'],
      ['status', 'RUNNING'],
      ['status', 'WAITING_INPUT'],
      ['input_required', null],
      ['status', 'RUNNING'],
      ['input_answered', null],
      ['tool_call', null],
      ['tool_result', null],
      ['status', 'COMPLETED'],
    ]);
    // The answer was consumed by the call.
    expect(await stack.ctx.orm.em.fork().findOneOrFail(ExecutionInput, asked.pendingInput.inputId)).toMatchObject({
      status: ExecutionInputStatus.DELIVERED,
    });
  });

  it.each([
    ['decline', { action: 'decline' }, 'refused: not approved (decline)'],
    ['cancel', { action: 'cancel' }, 'refused: not approved (cancel)'],
    ['accept without approve', { action: 'accept', content: { approve: false } }, 'refused: not approved (approve: false)'],
  ])('a %s ends the run FAILED with the reason, and nothing reaches the server', async (_name, answer, error) => {
    const { task, calls } = await stack.gatedTask();
    const id = await stack.tasks.run(task.id);
    await waitingForApproval(stack, id);
    await stack.answer(id, answer).expect(200);
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'FAILED', error });
    const events = await stack.events(id);
    expect(phases(events).slice(-3)).toEqual([
      ['tool_call', null],
      ['tool_result', null],
      ['status', 'FAILED'],
    ]);
    expect(events.at(-2)).toMatchObject({ toolCall: { name: 'deploy', result: { error } } });
    expect(calls()).toHaveLength(0);
  });

  it('a cancel while it waits: CANCELLED, nothing sent', async () => {
    const { task, calls } = await stack.gatedTask();
    const id = await stack.tasks.run(task.id);
    await waitingForApproval(stack, id);
    await stack.http.post(`/api/executions/${id}/cancel`).set(stack.tasks.auth).expect(202);
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'CANCELLED' });
    expect(calls()).toHaveLength(0);
    await stack.answer(id, { action: 'accept', content: { approve: true } }).expect(409);
  });

  it('the wait is durable: the worker stops while the run waits, the approval given meanwhile is honoured by the next one', async () => {
    const { task, calls } = await stack.gatedTask();
    const id = await stack.tasks.run(task.id);
    await waitingForApproval(stack, id);
    await stack.restartWorker(() => stack.answer(id, { action: 'accept', content: { approve: true } }).expect(200));
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'COMPLETED' });
    expect(calls()).toHaveLength(1);
  });

  it('a tool granted without the gate is called at once', async () => {
    const { task, calls } = await stack.gatedTask(false);
    const id = await stack.tasks.run(task.id);
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'COMPLETED' });
    expect(phases(await stack.events(id)).map(([phase]) => phase)).not.toContain('input_required');
    expect(calls()).toHaveLength(1);
  });
});

describe('tool tasks: an approval nobody gives in time', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await gatedStack({ executions: { ...loadConfig().executions, inputTimeoutMs: 2000 } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('expires: TIMED_OUT with the input timeout’s sentence, nothing sent, and a late answer is refused', async () => {
    const { task, calls } = await stack.gatedTask();
    const id = await stack.tasks.run(task.id);
    await waitingForApproval(stack, id);
    expect(await stack.tasks.ended(id, 30_000)).toMatchObject({ status: 'TIMED_OUT', error: 'no answer to the input request within 2 s' });
    await stack.answer(id, { action: 'accept', content: { approve: true } }).expect(409);
    // Give a wrongly sent call every chance to arrive: the run's workflow has closed by now.
    await waitFor(
      async () => (await stack.ctx.temporal.client.workflow.getHandle(`execution-${id}`).describe()).status.name !== 'RUNNING',
      15_000,
      100,
    );
    expect(calls()).toHaveLength(0);
  });
});
