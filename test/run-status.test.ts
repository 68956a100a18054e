/**
 * A run's Temporal status says what happened to it, so an operator filtering the Web UI or
 * `temporal workflow list` by status sees the failures: a FAILED run's workflow fails with the
 * run's reason, a cancelled one is cancelled, a TIMED_OUT one fails (`ExecutionTimedOut`), a
 * COMPLETED one completes; and the `RunStatus` search attribute follows the run, waits for an
 * answer included. The same for task occurrences (`taskRun`), whose retries still work.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { executionOutcome } from '../domain/temporal';
import type { AgentHost } from '../host/server';
import { SearchAttributes } from '../lib/search-attributes';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, hostWithAgent, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { taskApi, type Run } from './tasks';

describe('the Temporal status of runs and occurrences', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let tasks: ReturnType<typeof taskApi>;
  let serverId: string;
  const hosts: AgentHost[] = [];
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Run Status Org');
    worker = await startTestWorker(ctx);
    tasks = taskApi(http, admin);
    ({ serverId } = await hostWithAgent(http, admin, hosts));
  });
  afterAll(async () => {
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const handle = (workflowId: string) => ctx.temporal.client.workflow.getHandle(workflowId);

  /** The workflow once it has closed: its status and its RunStatus. */
  async function closed(workflowId: string) {
    return waitFor(
      async () => {
        const description = await handle(workflowId).describe();
        return description.status.name === 'RUNNING'
          ? undefined
          : { status: description.status.name, runStatus: description.typedSearchAttributes.get(SearchAttributes.RunStatus) };
      },
      30_000,
      100,
    );
  }

  /** What the workflow's result() throws. */
  async function failureOf(h: WorkflowHandle): Promise<unknown> {
    const error = await h.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    return (error as WorkflowFailedError).cause;
  }

  async function execute(agentId: string, prompt: string, extra: Record<string, unknown> = {}): Promise<string> {
    return (
      await http
        .post(`/api/agents/${agentId}/execute`)
        .set(as())
        .send({ prompt, ...extra })
        .expect(202)
    ).body.executionId as string;
  }

  /** Visibility is a moment behind: the workflow ids the query lists once they include `expected`. */
  async function listed(query: string, expected: string[]): Promise<string[]> {
    return waitFor(
      async () => {
        const ids: string[] = [];
        for await (const run of ctx.temporal.client.workflow.list({ query: `OrganizationId = '${admin.organizationId}' AND ${query}` }))
          ids.push(run.workflowId);
        return expected.every((id) => ids.includes(id)) ? ids : undefined;
      },
      30_000,
      250,
    );
  }

  it('plain runs: COMPLETED completes, FAILED fails with the reason, CANCELLED is cancelled, TIMED_OUT fails as ExecutionTimedOut; RunStatus says each, WAITING_INPUT too', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const completed = await execute(agent.id, 'fine [steps:2]');
    const failed = await execute(agent.id, 'broken [fail]');
    const cancelled = await execute(agent.id, 'forever [hang]');
    const asking = await execute(agent.id, '[ask:Anyone there?] done', { inputTimeoutMs: 3000 });

    // While the question waits, operators find the run by RunStatus.
    await tasks.waitStatus(asking, 'WAITING_INPUT', 30_000);
    // The row says WAITING_INPUT one workflow task before the workflow upserts RunStatus.
    await waitFor(
      async () =>
        (await handle(`execution-${asking}`).describe()).typedSearchAttributes.get(SearchAttributes.RunStatus) === 'WAITING_INPUT',
      60_000,
      100,
    );
    await listed(`RunStatus = 'WAITING_INPUT'`, [`execution-${asking}`]);

    await tasks.waitStatus(cancelled, 'RUNNING');
    await http.post(`/api/executions/${cancelled}/cancel`).set(as()).expect(202);

    expect(await closed(`execution-${completed}`)).toEqual({ status: 'COMPLETED', runStatus: 'COMPLETED' });
    expect(await handle(`execution-${completed}`).result()).toEqual({ status: 'COMPLETED' });

    expect(await closed(`execution-${failed}`)).toEqual({ status: 'FAILED', runStatus: 'FAILED' });
    const failure = await failureOf(handle(`execution-${failed}`));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const row = await tasks.execution(failed);
    expect(failure).toMatchObject({ type: 'ExecutionFailed', message: row!.error, nonRetryable: true });
    expect(row!.error).toContain('the [fail] directive fails this run');

    expect(await closed(`execution-${cancelled}`)).toEqual({ status: 'CANCELLED', runStatus: 'CANCELLED' });
    expect(await failureOf(handle(`execution-${cancelled}`))).toBeInstanceOf(CancelledFailure);

    expect(await closed(`execution-${asking}`)).toEqual({ status: 'FAILED', runStatus: 'TIMED_OUT' });
    expect(await failureOf(handle(`execution-${asking}`))).toMatchObject({
      type: 'ExecutionTimedOut',
      message: 'no answer to the input request within 3 s',
    });

    // A waiter on the result (the master agent's create-agent route) still reads each outcome.
    expect(await executionOutcome(ctx.temporal, failed)).toEqual({ status: 'FAILED', error: row!.error });
    expect(await executionOutcome(ctx.temporal, cancelled)).toMatchObject({ status: 'CANCELLED' });
    expect(await executionOutcome(ctx.temporal, asking)).toEqual({
      status: 'TIMED_OUT',
      error: 'no answer to the input request within 3 s',
    });

    // What docs/executions.md tells an operator to type.
    const failures = await listed(`ExecutionKind = 'agent-execution' AND ExecutionStatus = 'Failed'`, [
      `execution-${failed}`,
      `execution-${asking}`,
    ]);
    expect(failures).not.toContain(`execution-${completed}`);
    const byRunStatus = await listed(`RunStatus = 'FAILED'`, [`execution-${failed}`]);
    expect(byRunStatus).not.toContain(`execution-${asking}`);
    await listed(`ExecutionStatus = 'Canceled'`, [`execution-${cancelled}`]);
  });

  it('occurrences: a failed run retried fails its occurrence with the last reason, each run recorded and linked; cancelled, timed out, skipped and completed occurrences say so too', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });

    const failing = await tasks.create({ agentId: agent.id, prompt: 'broken [fail]', maxRetries: 1 });
    const first = await tasks.run(failing.id);
    const occurrence = `task-run-${failing.id}-${first}`;
    expect(await closed(occurrence)).toEqual({ status: 'FAILED', runStatus: 'FAILED' });
    const runs = await tasks.runs(failing.id);
    expect(runs).toHaveLength(2);
    const retry = runs.find((r) => r.id !== first)!;
    expect(retry).toMatchObject({ trigger: 'retry', retryOfId: first, status: 'FAILED' });
    expect(runs.find((r) => r.id === first)).toMatchObject({ trigger: 'manual', status: 'FAILED' });
    expect(await failureOf(handle(occurrence))).toMatchObject({ type: 'ExecutionFailed', message: retry.error });
    for (const id of [first, retry.id]) expect(await closed(`execution-${id}`)).toEqual({ status: 'FAILED', runStatus: 'FAILED' });
    expect((await http.get(`/api/tasks/${failing.id}`).set(as()).expect(200)).body).toMatchObject({
      runCount: 1,
      failedCount: 2,
      liveCount: 0,
      lastRun: { id: retry.id, status: 'FAILED' },
    });

    const hanging = await tasks.create({ agentId: agent.id, prompt: 'forever [hang]', maxRetries: 2 });
    const hung = await tasks.run(hanging.id);
    await tasks.waitStatus(hung, 'RUNNING');
    await http.post(`/api/tasks/${hanging.id}/cancel`).set(as()).send({}).expect(202);
    expect(await closed(`task-run-${hanging.id}-${hung}`)).toEqual({ status: 'CANCELLED', runStatus: 'CANCELLED' });
    expect(await closed(`execution-${hung}`)).toEqual({ status: 'CANCELLED', runStatus: 'CANCELLED' });
    // A cancelled run is not retried.
    expect((await tasks.runs(hanging.id)).map((r: Run) => r.status)).toEqual(['CANCELLED']);

    const slow = await tasks.create({ agentId: agent.id, prompt: 'too slow [hang]', timeoutMs: 1500, overlapPolicy: 'ALLOW_ALL' });
    const cut = await tasks.run(slow.id);
    expect(await closed(`task-run-${slow.id}-${cut}`)).toEqual({ status: 'FAILED', runStatus: 'TIMED_OUT' });
    expect(await failureOf(handle(`task-run-${slow.id}-${cut}`))).toMatchObject({
      type: 'ExecutionTimedOut',
      message: "the run did not finish within 1500 ms (the task's timeoutMs)",
    });
    // The occurrence cancelled its child run, which ends as the row says: TIMED_OUT.
    expect(await closed(`execution-${cut}`)).toEqual({ status: 'FAILED', runStatus: 'TIMED_OUT' });

    const skipping = await tasks.create({ agentId: agent.id, prompt: 'long [hang]', overlapPolicy: 'SKIP' });
    const running = await tasks.run(skipping.id);
    await tasks.waitStatus(running, 'RUNNING');
    const skipped = await tasks.run(skipping.id);
    expect(await closed(`task-run-${skipping.id}-${skipped}`)).toEqual({ status: 'COMPLETED', runStatus: 'SKIPPED' });
    await http.post(`/api/tasks/${skipping.id}/cancel`).set(as()).send({}).expect(202);
    await closed(`task-run-${skipping.id}-${running}`);

    const fine = await tasks.create({ agentId: agent.id, prompt: 'fine [steps:1]' });
    const done = await tasks.run(fine.id);
    expect(await closed(`task-run-${fine.id}-${done}`)).toEqual({ status: 'COMPLETED', runStatus: 'COMPLETED' });
    expect(await handle(`task-run-${fine.id}-${done}`).result()).toMatchObject({ executionId: done, status: 'COMPLETED', attempts: 1 });

    await listed(`ExecutionKind = 'task-run' AND ExecutionStatus = 'Failed'`, [occurrence, `task-run-${slow.id}-${cut}`]);
  });
});
