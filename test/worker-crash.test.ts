import type { ChildProcess } from 'node:child_process';
import type { AgentHost } from '../host/server';
import type { AgentExecutionPayload } from '../domain/events';
import { Execution } from '../entities';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, spawnWorkerProcess, startTestWorker, type TestContext } from './harness';

describe('a worker killed mid-execution', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  const hosts: AgentHost[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Crash Org');
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  /** A 25-step run on a real worker process, SIGKILLed after a few events; a second worker process takes over. */
  async function runThroughACrash(tasks: boolean) {
    const { host, serverId } = await registerHost(http, admin, { stepDelayMs: 100, tasks });
    hosts.push(host);
    // Validation runs on an in-process worker; the execution on a real worker process.
    const validator = await startTestWorker(ctx);
    const agent = await activeAgent(http, admin, serverId);
    await validator.stop();

    const first = spawnWorkerProcess(ctx);
    children.push(first);
    const res = await http
      .post(`/api/agents/${agent.id}/execute`)
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ prompt: 'long job [steps:25] [delay:120]' })
      .expect(202);
    const executionId = res.body.executionId as string;
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 30_000);
    await waitFor(
      async () =>
        (await http.get(`/api/executions/${executionId}/events`).auth(admin.accessToken, { type: 'bearer' })).body.items.length >= 6,
      20_000,
    );
    const taskId = (await ctx.orm.em.fork().findOneOrFail(Execution, executionId)).mcpTaskId;

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const second = spawnWorkerProcess(ctx);
    children.push(second);

    const done = await waitFor(
      async () => {
        const r = await http.get(`/api/executions/${executionId}`).auth(admin.accessToken, { type: 'bearer' });
        return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(r.body.status) ? r.body : undefined;
      },
      60_000,
      200,
    );
    const events = (
      await http.get(`/api/executions/${executionId}/events`).query({ limit: 1000 }).auth(admin.accessToken, { type: 'bearer' })
    ).body.items as AgentExecutionPayload[];
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
    const prompts = host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId);
    return { host, executionId, taskId, done, events, prompts };
  }

  it('loses nothing: after a restart the execution finishes, each attempt’s events marked, the log gapless', async () => {
    const { done, events, prompts } = await runThroughACrash(false);
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 2 });
    expect(prompts).toHaveLength(2);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(events.map((e) => e.attempt))).toEqual(new Set([1, 2]));
    const retry = events.find((e) => e.attempt === 2 && e.phase === 'status')!;
    expect(retry).toMatchObject({ status: 'RUNNING', data: { retry: true, attempt: 2 } });
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
  }, 120_000);

  it('on a task-capable host it re-attaches to the same task: one tools/call reached the host, the log is gapless and shows the re-attach', async () => {
    const { host, taskId, done, events, prompts } = await runThroughACrash(true);
    expect(taskId).toEqual(expect.any(String));
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 2 });
    // The prompt ran once: attempt 2 followed the task instead of sending execute_prompt again.
    expect(prompts).toHaveLength(1);
    expect(host.taskRequests.filter((r) => r.method === 'tasks/result' && r.taskId === taskId).length).toBeGreaterThanOrEqual(2);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const reattach = events.find((e) => e.attempt === 2 && e.phase === 'status')!;
    expect(reattach).toMatchObject({ status: 'RUNNING', data: { reattach: true, taskId, attempt: 2 } });
    expect(events.some((e) => (e.data as { retry?: boolean } | undefined)?.retry)).toBe(false);
    // The output continues instead of starting over: no chunk twice, those written while no
    // worker listened delivered to the next one, and the whole output at the end.
    const chunks = events.filter((e) => e.phase === 'output' && /^chunk \d+/.test(e.output ?? '')).map((e) => e.output);
    expect(new Set(chunks).size).toBe(chunks.length);
    expect(chunks).toContain('chunk 25\n');
    expect(done.output).toContain('chunk 25\n');
    expect(done.output.match(/chunk 1\n/g)).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
  }, 120_000);
});
