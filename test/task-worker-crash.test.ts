import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { taskApi } from './tasks';

/** The real worker entry point in its own process, so it can be killed with SIGKILL. */
function spawnWorker(ctx: TestContext): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue, LOG_LEVEL: 'warn', LOG_PRETTY: 'false' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

describe('a worker killed in the middle of a task occurrence', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Task Crash Org');
    ({ host, serverId } = await registerHost(http, admin, { stepDelayMs: 100 }));
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await host?.close();
    await ctx?.close();
  });

  it('still ends the occurrence in a final state once another worker runs, its counters and log complete', async () => {
    const validator = await startTestWorker(ctx);
    const agent = await activeAgent(http, admin, serverId);
    await validator.stop();
    const tasks = taskApi(http, admin);
    const task = await tasks.create({
      agentId: agent.id,
      prompt: 'long job [steps:20] [delay:120]',
      overlapPolicy: 'SKIP',
      timeoutMs: 120_000,
      maxRetries: 1,
    });

    const first = spawnWorker(ctx);
    children.push(first);
    const executionId = await tasks.run(task.id);
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 30_000);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    // While no worker runs, the occurrence is still live: another one is skipped against it.
    const skipped = await tasks.run(task.id);
    const second = spawnWorker(ctx);
    children.push(second);

    const done = await tasks.ended(executionId, 90_000);
    expect(done).toMatchObject({ status: 'COMPLETED', taskId: task.id, attempt: 2 });
    expect(await tasks.ended(skipped, 30_000)).toMatchObject({ status: 'SKIPPED', error: expect.stringContaining(executionId) });
    const events = (await http.get(`/api/executions/${executionId}/events`).query({ limit: 1000 }).set(tasks.auth)).body.items as {
      seq: number;
      taskId?: string;
    }[];
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.taskId === task.id)).toBe(true);
    const detail = await waitFor(async () => {
      const res = await http.get(`/api/tasks/${task.id}`).set(tasks.auth);
      return res.body.liveCount === 0 ? res.body : undefined;
    }, 20_000);
    expect(detail).toMatchObject({ runCount: 1, skippedCount: 1, lastRun: { id: skipped } });
    const handle = ctx.temporal.client.workflow.getHandle(`task-run-${task.id}-${executionId}`);
    expect(await handle.result()).toMatchObject({ executionId, status: 'COMPLETED', attempts: 1 });
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }, 150_000);
});
