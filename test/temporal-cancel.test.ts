import type { temporal } from '@temporalio/proto';
import { Execution } from '../entities';
import type { AgentExecutionPayload } from '../domain/events';
import type { AgentHost } from '../host/server';
import { executionWorkflowId } from '../workflows/contracts/agent-execution';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { hostWithAgent, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** An event's time in ms. */
function at(event: HistoryEvent): number {
  const t = event.eventTime!;
  return Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

/**
 * A run cancelled by Temporal alone (the Temporal UI's Cancel, `temporal workflow cancel`, a
 * terminated parent's REQUEST_CANCEL), without mcp-fleet's cancel route and its fast path: the
 * workflow closes before the prompt activity hears the cancel, so only the workflow's end can
 * send the host its tasks/cancel.
 */
describe('a task-backed run cancelled through Temporal alone', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const hosts: AgentHost[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Temporal Cancel Org');
    worker = await startTestWorker(ctx);
  });
  afterAll(async () => {
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  async function started(): Promise<{ host: AgentHost; executionId: string; taskId: string }> {
    const { host, agent } = await hostWithAgent(http, admin, hosts);
    const res = await http
      .post(`/api/agents/${agent.id}/execute`)
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ prompt: 'long [steps:2000] [delay:50]' })
      .expect(202);
    const executionId = res.body.executionId as string;
    await waitFor(async () => (await events(executionId)).some((e) => e.phase === 'output'), 30_000);
    const taskId = (await ctx.orm.em.fork().findOneOrFail(Execution, executionId)).mcpTaskId;
    expect(taskId).toEqual(expect.any(String));
    expect(host.running()).toBe(1);
    return { host, executionId, taskId: taskId! };
  }

  async function events(executionId: string): Promise<AgentExecutionPayload[]> {
    return (await http.get(`/api/executions/${executionId}/events`).query({ limit: 1000 }).auth(admin.accessToken, { type: 'bearer' })).body
      .items as AgentExecutionPayload[];
  }

  async function finished(executionId: string): Promise<Record<string, unknown>> {
    return waitFor(
      async () => {
        const r = await http.get(`/api/executions/${executionId}`).auth(admin.accessToken, { type: 'bearer' });
        return FINAL.includes(r.body.status) ? (r.body as Record<string, unknown>) : undefined;
      },
      30_000,
      100,
    );
  }

  /** The workflow's cancelRemoteTask, from its history: whether it ran, and how long it held the close (scheduled to completed). */
  async function cancelRemoteTaskOf(executionId: string): Promise<{ ran: false } | { ran: true; completed: boolean; ms: number }> {
    const handle = ctx.temporal.client.workflow.getHandle(executionWorkflowId(executionId));
    await handle.result().catch(() => undefined);
    const history = (await handle.fetchHistory()).events ?? [];
    const scheduled = history.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'cancelRemoteTask');
    if (!scheduled) return { ran: false };
    const closed = history.find(
      (e) =>
        Number(
          (e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes)
            ?.scheduledEventId,
        ) === Number(scheduled.eventId),
    );
    return { ran: true, completed: !!closed?.activityTaskCompletedEventAttributes, ms: closed ? at(closed) - at(scheduled) : NaN };
  }

  const cancelsOf = (host: AgentHost, taskId: string) =>
    host.taskRequests.filter((r) => r.method === 'tasks/cancel' && r.taskId === taskId);

  it("Temporal's own cancel of the workflow ends the run CANCELLED and cancels its task on the host", async () => {
    const { host, executionId, taskId } = await started();
    await ctx.temporal.client.workflow.getHandle(executionWorkflowId(executionId)).cancel();
    expect(await finished(executionId)).toMatchObject({ status: 'CANCELLED', error: 'cancelled by request' });
    // The activity alone would hear of the cancel only on a heartbeat after the workflow closed,
    // find it gone, and let the task run on: the workflow's end cancels it.
    await waitFor(async () => cancelsOf(host, taskId).length > 0, 20_000);
    await waitFor(async () => host.running() === 0, 20_000);
    const step = await cancelRemoteTaskOf(executionId);
    expect(step).toMatchObject({ ran: true, completed: true });
    console.log(`Temporal-only cancel: cancelRemoteTask held the workflow's close ${step.ran ? step.ms : '-'} ms`);
  }, 90_000);

  it("the cancel route (fast path, then Temporal's cancel) still ends CANCELLED; a second tasks/cancel on the cancelled task is harmless", async () => {
    const { host, executionId, taskId } = await started();
    await http.post(`/api/executions/${executionId}/cancel`).auth(admin.accessToken, { type: 'bearer' }).expect(202);
    expect(await finished(executionId)).toMatchObject({ status: 'CANCELLED', error: 'cancelled by request' });
    await waitFor(async () => cancelsOf(host, taskId).length > 0, 20_000);
    await waitFor(async () => host.running() === 0, 20_000);
    // Which reaches the workflow first, the activity's ExecutionCancelled (no extra step) or
    // Temporal's cancel (then cancelRemoteTask too), is a race; either way the end is the same.
    const step = await cancelRemoteTaskOf(executionId);
    if (step.ran) expect(step.completed).toBe(true);
    console.log(
      `fast-path cancel: cancelRemoteTask ${step.ran ? `held the workflow's close ${step.ms} ms` : 'did not run'}; ` +
        `tasks/cancel received ${cancelsOf(host, taskId).length}×`,
    );
  }, 90_000);
});
