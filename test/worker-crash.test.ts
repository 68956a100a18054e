import type { ChildProcess } from 'node:child_process';
import type { AgentHost } from '../host/server';
import type { AgentExecutionPayload } from '../domain/realtime-types';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, spawnWorkerProcess, startTestWorker, type TestContext } from './harness';

describe('a worker killed mid-execution', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Crash Org');
    ({ host, serverId } = await registerHost(http, admin, { stepDelayMs: 100, tasks: false }));
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await host?.close();
    await ctx?.close();
  });

  it('loses nothing: after a restart the execution finishes, each attempt’s events marked, the log gapless', async () => {
    // Validation runs on an in-process worker; the execution on a real worker process.
    const validator = await startTestWorker(ctx);
    const agent = await activeAgent(http, admin, serverId);
    await validator.stop();

    const first = spawnWorkerProcess(ctx);
    children.push(first);
    const res = await http.post(`/api/agents/${agent.id}/execute`).auth(admin.accessToken, { type: 'bearer' }).send({ prompt: 'long job [steps:25] [delay:120]' }).expect(202);
    const executionId = res.body.executionId as string;
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 30_000);
    await waitFor(async () => (await http.get(`/api/executions/${executionId}/events`).auth(admin.accessToken, { type: 'bearer' })).body.items.length >= 6, 20_000);

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
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 2 });
    expect(host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId)).toHaveLength(2);

    const events = (await http.get(`/api/executions/${executionId}/events`).query({ limit: 1000 }).auth(admin.accessToken, { type: 'bearer' })).body.items as AgentExecutionPayload[];
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(events.map((e) => e.attempt))).toEqual(new Set([1, 2]));
    const retry = events.find((e) => e.attempt === 2 && e.phase === 'status')!;
    expect(retry).toMatchObject({ status: 'RUNNING', data: { retry: true, attempt: 2 } });
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }, 120_000);
});
