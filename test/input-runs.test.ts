/**
 * Input requests end to end: the API, a real worker, Temporal and the reference host asking
 * questions (`[ask:…]`, and the approval gate before a gated tool's command), on a task host
 * (the run waits durably: WAITING_INPUT, no activity) and on a plain host (the worker holds the
 * question).
 */
import { Execution, ServerToolStatus, type ToolDefinition } from '../entities';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { hostWithAgent, registerHost, waitFor } from './fleet';
import { createTestContext, spawnWorkerProcess, startTestWorker, type TestContext } from './harness';
import { catalogEntry, setServerTool } from './tool-fixtures';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

describe('input requests on a live stack', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  const hosts: AgentHost[] = [];
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Input Runs Org');
    worker = await startTestWorker(ctx);
  });
  afterAll(async () => {
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const withAgent = (options: Parameters<typeof registerHost>[2] = {}) => hostWithAgent(http, admin, hosts, options);

  async function run(agentId: string, prompt: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await http
      .post(`/api/agents/${agentId}/execute`)
      .set(as())
      .send({ prompt, ...extra })
      .expect(202);
    return res.body.executionId as string;
  }

  const show = async (executionId: string) =>
    (await http.get(`/api/executions/${executionId}`).set(as()).expect(200)).body as Record<string, unknown> & {
      status: string;
      pendingInput: { inputId: string; message: string } | null;
    };

  const waiting = (executionId: string, timeoutMs = 30_000) =>
    waitFor(
      async () => {
        const body = await show(executionId);
        if (FINAL.includes(body.status)) throw new Error(`the run ended ${body.status} instead of waiting: ${String(body.error)}`);
        return body.status === 'WAITING_INPUT' && body.pendingInput ? body : undefined;
      },
      timeoutMs,
      100,
    );

  const finished = (executionId: string, timeoutMs = 30_000) =>
    waitFor(
      async () => {
        const body = await show(executionId);
        return FINAL.includes(body.status) ? body : undefined;
      },
      timeoutMs,
      100,
    );

  const answer = (executionId: string, body: Record<string, unknown>) =>
    http.post(`/api/executions/${executionId}/input`).set(as()).send(body);

  const promptCalls = (host: AgentHost, executionId: string) =>
    host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId).length;

  it('task host: the run waits (WAITING_INPUT), the answer reaches the host and the run completes, with one execute_prompt', async () => {
    const { host, agent } = await withAgent();
    const id = await run(agent.id, '[ask:Which branch?] done');
    const asked = await waiting(id);
    expect(asked.pendingInput).toMatchObject({ message: 'Which branch?' });
    // The activity stopped and recorded the running time so far; the wait itself is not counted.
    const used = await waitFor(async () => (await ctx.orm.em.fork().findOneOrFail(Execution, id)).runMsUsed || undefined);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await ctx.orm.em.fork().findOneOrFail(Execution, id)).runMsUsed).toBe(used);
    await answer(id, { action: 'accept', content: { answer: 'main' } }).expect(200);
    const done = await finished(id);
    expect(done).toMatchObject({ status: 'COMPLETED', output: expect.stringContaining('asked "Which branch?": accept {"answer":"main"}') });
    expect(promptCalls(host, id)).toBe(1);
    expect(host.taskRequests.filter((r) => r.method === 'tasks/result').length).toBeGreaterThanOrEqual(2);
  });

  it.each(['decline', 'cancel'])('task host: a %s reaches the host as such', async (action) => {
    const { agent } = await withAgent();
    const id = await run(agent.id, '[ask:Deploy now?] done');
    await waiting(id);
    await answer(id, { action }).expect(200);
    expect(await finished(id)).toMatchObject({ status: 'COMPLETED', output: expect.stringContaining(`asked "Deploy now?": ${action}`) });
  });

  it('task host: nobody answers within the input timeout: TIMED_OUT, and the task is cancelled on the host', async () => {
    const { host, agent } = await withAgent();
    const id = await run(agent.id, '[ask:Anyone there?] done', { inputTimeoutMs: 2000 });
    await waiting(id);
    const done = await finished(id);
    expect(done).toMatchObject({ status: 'TIMED_OUT', error: 'no answer to the input request within 2 s' });
    await host.waitForTaskRequest('tasks/cancel');
    await answer(id, { action: 'decline' }).expect(409);
  });

  it('task host: a cancel while the run waits cancels the task on the host', async () => {
    const { host, agent } = await withAgent();
    const id = await run(agent.id, '[ask:Wait for me?] done');
    await waiting(id);
    await http
      .post(`/api/executions/${id}/cancel`)
      .set(as())
      .expect((res) => expect(res.status).toBeLessThan(300));
    expect(await finished(id)).toMatchObject({ status: 'CANCELLED' });
    await host.waitForTaskRequest('tasks/cancel');
  });

  it('task host: the worker restarts while the run waits; the answer still reaches the host', async () => {
    const { host, agent } = await withAgent();
    const id = await run(agent.id, '[ask:Still there?] done');
    await waiting(id);
    await worker!.stop();
    worker = undefined;
    await answer(id, { action: 'accept', content: { answer: 'yes' } }).expect(200);
    worker = await startTestWorker(ctx);
    expect(await finished(id)).toMatchObject({
      status: 'COMPLETED',
      output: expect.stringContaining('asked "Still there?": accept {"answer":"yes"}'),
    });
    expect(promptCalls(host, id)).toBe(1);
  });

  it('task host: the worker process is SIGKILLed while the run waits; the answer reaches the host through the next worker', async () => {
    const { host, agent } = await withAgent();
    await worker!.stop();
    worker = undefined;
    const first = spawnWorkerProcess(ctx);
    try {
      const id = await run(agent.id, '[ask:After the crash?] done');
      await waiting(id);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      await answer(id, { action: 'accept', content: { answer: 'still here' } }).expect(200);
      worker = await startTestWorker(ctx);
      expect(await finished(id, 60_000)).toMatchObject({
        status: 'COMPLETED',
        output: expect.stringContaining('asked "After the crash?": accept {"answer":"still here"}'),
      });
      expect(promptCalls(host, id)).toBe(1);
    } finally {
      if (first.exitCode === null) first.kill('SIGKILL');
      worker ??= await startTestWorker(ctx);
    }
  }, 90_000);

  it('plain host: the worker holds the question until the answer', async () => {
    const { agent } = await withAgent({ tasks: false });
    const id = await run(agent.id, '[ask:Which tag?] done');
    await waiting(id);
    await answer(id, { action: 'accept', content: { answer: 'v1' } }).expect(200);
    expect(await finished(id)).toMatchObject({
      status: 'COMPLETED',
      output: expect.stringContaining('asked "Which tag?": accept {"answer":"v1"}'),
    });
  });

  it('plain host: the worker process is SIGKILLed while it holds the question; the retry runs the prompt again and gets the answer given meanwhile', async () => {
    const { host, agent } = await withAgent({ tasks: false });
    await worker!.stop();
    worker = undefined;
    const first = spawnWorkerProcess(ctx);
    try {
      const id = await run(agent.id, '[ask:Which port?] done');
      await waiting(id);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      await answer(id, { action: 'accept', content: { answer: '8080' } }).expect(200);
      worker = await startTestWorker(ctx);
      expect(await finished(id, 60_000)).toMatchObject({
        status: 'COMPLETED',
        output: expect.stringContaining('asked "Which port?": accept {"answer":"8080"}'),
      });
      // At least once: the plain call is lost with its worker and sent again.
      expect(promptCalls(host, id)).toBe(2);
    } finally {
      if (first.exitCode === null) first.kill('SIGKILL');
      worker ??= await startTestWorker(ctx);
    }
  }, 90_000);

  it('plain host: nobody answers within the input timeout: TIMED_OUT', async () => {
    const { agent } = await withAgent({ tasks: false });
    const id = await run(agent.id, '[ask:Hello?] done', { inputTimeoutMs: 2000 });
    await waiting(id);
    expect(await finished(id)).toMatchObject({ status: 'TIMED_OUT', error: 'no answer to the input request within 2 s' });
  });

  describe('approval gate', () => {
    let git: ToolDefinition;
    beforeAll(async () => {
      git = await catalogEntry(
        ctx.orm,
        admin.organizationId,
        { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'git --version' },
        { name: 'git', category: 'vcs' },
      );
    });

    async function gatedAgent(tasks: boolean) {
      const { serverId, agent } = await withAgent({ allowCommands: true, tasks });
      await setServerTool(ctx.orm.em.fork(), serverId, git.id, ServerToolStatus.INSTALLED);
      await http
        .put(`/api/tools/agent/${agent.id}/permissions`)
        .set(as())
        .send({ permissions: [{ toolId: git.id, canUse: true, requiresApproval: true }] })
        .expect(200);
      return agent;
    }

    it.each([true, false])('approved, the command runs (task host: %s)', async (tasks) => {
      const agent = await gatedAgent(tasks);
      const id = await run(agent.id, 'checked [run:git --version]');
      const asked = await waiting(id);
      expect(asked.pendingInput!.message).toContain('wants to run: git --version');
      await answer(id, { action: 'accept', content: { approve: true } }).expect(200);
      expect(await finished(id)).toMatchObject({ status: 'COMPLETED', output: expect.stringMatching(/git version \d+/) });
    });

    it('declined, the command is refused and never runs', async () => {
      const agent = await gatedAgent(true);
      const id = await run(agent.id, '[run:git --version]');
      await waiting(id);
      await answer(id, { action: 'decline' }).expect(200);
      const done = await finished(id);
      expect(done.status).toBe('FAILED');
      expect(String(done.error)).toContain('not approved (decline)');
      const events = (await http.get(`/api/executions/${id}/events`).set(as()).expect(200)).body.items as { output?: string }[];
      expect(events.some((e) => e.output?.includes('git version'))).toBe(false);
    });
  });
});
