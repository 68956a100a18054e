import request from 'supertest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { temporal } from '@temporalio/proto';
import { startApiServer, type ApiServer } from '../api/server';
import type { FleetAccess } from '../lib/host-contract';
import { Execution } from '../entities';
import type { AgentExecutionPayload } from '../domain/events';
import type { AgentHost } from '../host/server';
import { executionWorkflowId } from '../workflows/contracts/agent-execution';
import { RUN_RECONCILE_WORKFLOW, type RunReconcileWorkflow } from '../workflows/contracts/run-reconcile';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, hostWithAgent, registerHost, waitFor } from './fleet';
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

/** A delegated run whose parent's workflow was terminated: Temporal's REQUEST_CANCEL reaches the child's workflow only. */
describe("a delegated run whose parent's workflow was terminated", () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let client: Client | undefined;

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Terminated Parent Org');
    ({ host, serverId } = await registerHost(http, admin));
  });
  afterAll(async () => {
    await client?.close();
    await host?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  it("ends the child CANCELLED and cancels the child's task on the host; the run reconcile then ends the parent's own run and task", async () => {
    const master = await activeAgent(http, admin, serverId, { role: 'MASTER', maxConcurrency: 2 });
    const child = await activeAgent(http, admin, serverId, { supervisorId: master.id, maxConcurrency: 2 });
    const parent = (
      await http
        .post(`/api/agents/${master.id}/execute`)
        .auth(admin.accessToken, { type: 'bearer' })
        .send({ prompt: '[hang] parent' })
        .expect(202)
    ).body.executionId as string;
    const fleet = (await waitFor(async () => host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === parent)?.args))
      .fleet as FleetAccess;
    client = new Client({ name: 'temporal-cancel-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', api.url), { requestInit: { headers: { Authorization: `Bearer ${fleet.token}` } } }),
    );
    const started = (await client.callTool({
      name: 'delegate',
      arguments: { agent: child.id, prompt: '[hang] the child', wait: false },
    })) as CallToolResult;
    const childId = (started.structuredContent as { executionId: string }).executionId;
    const taskId = await waitFor(async () => (await ctx.orm.em.fork().findOneOrFail(Execution, childId)).mcpTaskId, 30_000);
    await waitFor(async () => host.running() === 2, 30_000);

    await ctx.temporal.client.workflow.getHandle(executionWorkflowId(parent)).terminate('the operator terminated it');
    const ended = await waitFor(async () => {
      const body = (await http.get(`/api/executions/${childId}`).auth(admin.accessToken, { type: 'bearer' }).expect(200)).body;
      return FINAL.includes(body.status) && body;
    }, 30_000);
    expect(ended).toMatchObject({ status: 'CANCELLED' });
    await waitFor(async () => host.taskRequests.some((r) => r.method === 'tasks/cancel' && r.taskId === taskId), 20_000);
    // The parent's own task runs on (nothing of the parent ran to stop it): only the child's stopped.
    await waitFor(async () => host.running() === 1, 20_000);

    // Until the run reconcile (workflows/run-reconcile.workflow.ts) ends the parent's own run and stops its task.
    const taskQueue = ctx.config.temporal.taskQueue;
    await waitFor(async () => {
      for await (const w of ctx.temporal.client.workflow.list({
        query: `WorkflowType = 'agentExecution' AND ExecutionStatus = 'Terminated' AND TaskQueue = '${taskQueue}'`,
      }))
        if (w.workflowId === executionWorkflowId(parent)) return true;
      return false;
    }, 60_000);
    const summary = await ctx.temporal.client.workflow.execute<RunReconcileWorkflow>(RUN_RECONCILE_WORKFLOW, {
      taskQueue,
      workflowId: `run-reconcile-test-${parent}`,
      args: [{ lookbackSeconds: 3600, taskQueue }],
    });
    expect(summary.ended).toEqual([{ executionId: parent, status: 'CANCELLED', taskCancelled: true }]);
    const parentEnd = (await http.get(`/api/executions/${parent}`).auth(admin.accessToken, { type: 'bearer' }).expect(200)).body;
    expect(parentEnd).toMatchObject({ status: 'CANCELLED', error: expect.stringContaining('the operator terminated it') });
    await waitFor(async () => host.running() === 0, 20_000);
  }, 120_000);
});
