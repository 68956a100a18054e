import request from 'supertest';
import { randomUUID } from 'node:crypto';
import { startApiServer, type ApiServer } from '../api/server';
import { Agent, AuditLog, Execution, ExecutionInput, ExecutionInputStatus, ExecutionStatus } from '../entities';
import { makeExecution } from './factories';
import { CANCELLED_WITHOUT_WORKFLOW } from '../domain/runs/cancel';
import type { FleetAccess } from '../lib/host-contract';
import type { AgentHost } from '../host/server';
import { AGENT_EXECUTION_WORKFLOW, executionWorkflowId, type AgentExecutionWorkflow } from '../workflows/contracts/agent-execution';
import { RUN_RECONCILE_WORKFLOW, type RunReconcileSummary, type RunReconcileWorkflow } from '../workflows/contracts/run-reconcile';
import { ensureRunReconcileSchedule } from '../worker/schedules';
import { registerAccount, type Account, type Http } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

/**
 * A run whose workflow an operator terminated (the Temporal UI, `temporal workflow terminate`)
 * runs no code of its own: the run-reconcile schedule's workflow ends it as its end would have.
 */
describe('the run reconcile', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Run Reconcile Org');
    ({ host, serverId } = await registerHost(http, admin));
  });
  afterAll(async () => {
    await host?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const auth = () => ({ Authorization: `Bearer ${admin.accessToken}` });
  const execute = async (agentId: string, prompt: string) =>
    (await http.post(`/api/agents/${agentId}/execute`).set(auth()).send({ prompt }).expect(202)).body.executionId as string;
  const statusOf = async (id: string) => (await http.get(`/api/executions/${id}`).set(auth()).expect(200)).body as Record<string, unknown>;
  const hasStatus = (id: string, status: string) => waitFor(async () => (await statusOf(id)).status === status, 60_000, 100);
  /** The reconcile workflow, as the schedule starts it, on the test's own task queue (other test files terminate workflows too). */
  const reconcile = (lookbackSeconds = 3600, lostAfterSeconds = 86_400) =>
    ctx.temporal.client.workflow.execute<RunReconcileWorkflow>(RUN_RECONCILE_WORKFLOW, {
      taskQueue: ctx.config.temporal.taskQueue,
      workflowId: `run-reconcile-test-${randomUUID()}`,
      // Lost runs only past a day unless a test says: the test files that run their own Temporal
      // server (outages, time-skipping) share the database, and their runs are unknown to this one.
      args: [{ lookbackSeconds, taskQueue: ctx.config.temporal.taskQueue, lostAfterSeconds }],
    });
  /** Visibility lags its workflows: the reconcile lists them only once they show there closed. */
  const listedClosed = (ids: string[], status = 'Terminated') =>
    waitFor(
      async () => {
        const found = new Set<string>();
        for await (const w of ctx.temporal.client.workflow.list({
          query: `WorkflowType = 'agentExecution' AND ExecutionStatus = '${status}' AND TaskQueue = '${ctx.config.temporal.taskQueue}'`,
        }))
          found.add(w.workflowId);
        return ids.every((id) => found.has(executionWorkflowId(id)));
      },
      60_000,
      200,
    );

  it('ends a terminated RUNNING run CANCELLED (slot freed for the queued run, task cancelled, token refused) and a terminated QUEUED one; leaves running runs alone', async () => {
    const master = await activeAgent(http, admin, serverId, { role: 'MASTER', maxConcurrency: 1 });
    await activeAgent(http, admin, serverId, { supervisorId: master.id });
    const other = await activeAgent(http, admin, serverId);

    const running = await execute(master.id, '[hang] the run to terminate');
    const call = await waitFor(async () => host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === running)?.args);
    const fleet = call.fleet as FleetAccess;
    const taskId = await waitFor(async () => (await ctx.orm.em.fork().findOneOrFail(Execution, running)).mcpTaskId, 30_000);
    const queuedNext = await execute(master.id, '[hang] the run waiting for the slot');
    const queuedTerminated = await execute(master.id, 'a queued run to terminate');
    const untouched = await execute(other.id, '[hang] a run nobody terminates');
    await hasStatus(untouched, 'RUNNING');
    expect((await statusOf(queuedNext)).status).toBe('QUEUED');
    expect((await statusOf(queuedTerminated)).status).toBe('QUEUED');

    for (const id of [running, queuedTerminated])
      await ctx.temporal.client.workflow.getHandle(executionWorkflowId(id)).terminate('the operator terminated it');
    await listedClosed([running, queuedTerminated]);
    // Nothing of the workflow ran: the rows stay live until the reconcile.
    expect((await statusOf(running)).status).toBe('RUNNING');
    expect((await statusOf(queuedTerminated)).status).toBe('QUEUED');

    // Two reconciles at once (two workers' schedules, a manual trigger): each run is ended once.
    const summaries: RunReconcileSummary[] = await Promise.all([reconcile(), reconcile()]);
    const ended = summaries.flatMap((s) => s.ended);
    expect(ended.map((r) => r.executionId).sort()).toEqual([running, queuedTerminated].sort());
    expect(ended.find((r) => r.executionId === running)).toMatchObject({ status: 'CANCELLED', taskCancelled: true });

    const end = await statusOf(running);
    expect(end).toMatchObject({ status: 'CANCELLED' });
    expect(end.error).toMatch(/Temporal workflow execution-.* was terminated \(the operator terminated it/);
    expect(await statusOf(queuedTerminated)).toMatchObject({ status: 'CANCELLED' });
    // The slot went to the run queued behind it (woken by slotFreed, not its 30 s re-check).
    await hasStatus(queuedNext, 'RUNNING');
    // Its task on the host was cancelled.
    await waitFor(async () => host.taskRequests.some((r) => r.method === 'tasks/cancel' && r.taskId === taskId), 20_000);
    // Its run token is refused.
    const refused = await http
      .post('/mcp')
      .set('Authorization', `Bearer ${fleet.token}`)
      .set('Accept', 'application/json, text/event-stream')
      .send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_subordinates', arguments: {} } });
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('run_ended');
    // Audited once each.
    const audits = await ctx.orm.em
      .fork()
      .find(AuditLog, { action: 'execution.reconciled', resourceId: { $in: [running, queuedTerminated] } });
    expect(audits.map((a) => a.resourceId).sort()).toEqual([running, queuedTerminated].sort());
    expect(audits.find((a) => a.resourceId === running)?.changes).toMatchObject({
      status: { from: 'RUNNING', to: 'CANCELLED' },
      workflowId: executionWorkflowId(running),
      workflow: 'terminated',
    });

    // A run whose workflow still runs is never touched, and a second pass ends nothing more.
    const again = await reconcile();
    expect(again.ended).toEqual([]);
    expect((await statusOf(untouched)).status).toBe('RUNNING');
    expect((await statusOf(queuedNext)).status).toBe('RUNNING');
    expect(
      await ctx.orm.em.fork().count(AuditLog, { action: 'execution.reconciled', resourceId: { $in: [running, queuedTerminated] } }),
    ).toBe(2);

    for (const id of [untouched, queuedNext]) await http.post(`/api/executions/${id}/cancel`).set(auth()).expect(202);
  }, 180_000);

  it('ends a terminated WAITING_INPUT run CANCELLED: its question closed, its task cancelled, its agent idle again', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 1 });
    const asking = await execute(agent.id, '[ask:Which branch?] done');
    await hasStatus(asking, 'WAITING_INPUT');
    const taskId = (await ctx.orm.em.fork().findOneOrFail(Execution, asking)).mcpTaskId;
    expect(taskId).toEqual(expect.any(String));
    await ctx.temporal.client.workflow.getHandle(executionWorkflowId(asking)).terminate('stuck');
    await listedClosed([asking]);
    expect((await statusOf(asking)).status).toBe('WAITING_INPUT');

    const summary = await reconcile();
    expect(summary.ended).toEqual([{ executionId: asking, status: 'CANCELLED', taskCancelled: true }]);
    expect(await statusOf(asking)).toMatchObject({ status: 'CANCELLED', pendingInput: null });
    const questions = await ctx.orm.em.fork().find(ExecutionInput, { execution: asking });
    expect(questions.map((q) => q.status)).toEqual([ExecutionInputStatus.CANCELLED]);
    expect(host.taskRequests.some((r) => r.method === 'tasks/cancel' && r.taskId === taskId)).toBe(true);
    expect((await ctx.orm.em.fork().findOneOrFail(Agent, agent.id)).status).toBe('ACTIVE');
  }, 120_000);

  it('ends a QUEUED run whose workflow timed out (a workflow timeout) TIMED_OUT', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 1 });
    const holding = await execute(agent.id, '[hang] holds the only slot');
    await hasStatus(holding, 'RUNNING');
    // The API starts runs without a workflow timeout: this one is started as an operator's tooling might, with one.
    const em = ctx.orm.em.fork();
    const queued = makeExecution(em, await em.findOneOrFail(Agent, agent.id), ExecutionStatus.QUEUED);
    await em.flush();
    await ctx.temporal.client.workflow.start<AgentExecutionWorkflow>(AGENT_EXECUTION_WORKFLOW, {
      taskQueue: ctx.config.temporal.taskQueue,
      workflowId: executionWorkflowId(queued.id),
      args: [queued.id, { slotTaken: false }],
      workflowExecutionTimeout: '2s',
    });
    await listedClosed([queued.id], 'TimedOut');
    expect((await statusOf(queued.id)).status).toBe('QUEUED');

    const summary = await reconcile();
    expect(summary.ended).toEqual([{ executionId: queued.id, status: 'TIMED_OUT', taskCancelled: false }]);
    expect(await statusOf(queued.id)).toMatchObject({
      status: 'TIMED_OUT',
      error: `its Temporal workflow ${executionWorkflowId(queued.id)} timed out (workflow execution timeout)`,
    });
    expect((await statusOf(holding)).status).toBe('RUNNING');
    await http.post(`/api/executions/${holding}/cancel`).set(auth()).expect(202);
  }, 120_000);

  it('ends a run whose workflow was terminated before the look-back window (the workers were down longer than it)', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const stale = await execute(agent.id, '[hang] terminated while no worker reconciled');
    await hasStatus(stale, 'RUNNING');
    const handle = ctx.temporal.client.workflow.getHandle(executionWorkflowId(stale));
    await handle.terminate('terminated long ago');
    const closedAt = (await handle.describe()).closeTime!.getTime();
    // A window of 1 s that ended after the close: the listing no longer has the workflow.
    await waitFor(async () => Date.now() > closedAt + 2000, 10_000, 100);
    // Test files share the database: the run is on some page of the runs live since before the
    // window, which each sweep describes a page of.
    const sweeps: RunReconcileSummary[] = [];
    await waitFor(
      async () => {
        sweeps.push(await reconcile(1));
        return sweeps.some((s) => s.ended.some((r) => r.executionId === stale));
      },
      60_000,
      0,
    );
    expect(await statusOf(stale)).toMatchObject({ status: 'CANCELLED' });
    expect((await statusOf(stale)).error).toMatch(/was terminated \(terminated long ago/);
    expect((await ctx.orm.em.fork().findOneOrFail(Agent, agent.id)).status).toBe('ACTIVE');
  }, 120_000);

  it('ends FAILED a run live since before the window whose workflow Temporal does not know; leaves one created in the window, and a task run whose taskRun workflow runs', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    // A running workflow on this queue, standing for the taskRun workflow a queued task run waits in.
    const taskRunning = await execute(agent.id, '[hang] stands for a taskRun workflow that runs');
    await hasStatus(taskRunning, 'RUNNING');
    const em = ctx.orm.em.fork();
    const row = await em.findOneOrFail(Agent, agent.id);
    const longAgo = new Date(Date.now() - 3600_000);
    const fake = (status: ExecutionStatus, createdAt: Date, taskRunWorkflowId?: string) => {
      const run = makeExecution(em, row, status);
      Object.assign(run, { workflowId: executionWorkflowId(run.id), createdAt, ...(taskRunWorkflowId ? { taskRunWorkflowId } : {}) });
      return run.id;
    };
    // Temporal lost it: a namespace reset, or the API gone between its row and its start.
    const lost = fake(ExecutionStatus.RUNNING, longAgo);
    const queuedInTask = fake(ExecutionStatus.QUEUED, longAgo, executionWorkflowId(taskRunning));
    // In the window: its start may be on its way.
    const recent = fake(ExecutionStatus.RUNNING, new Date());
    await em.flush();
    const sweeps: RunReconcileSummary[] = [];
    await waitFor(
      async () => {
        sweeps.push(await reconcile(600, 1800));
        return sweeps.some((s) => s.ended.some((r) => r.executionId === lost));
      },
      60_000,
      0,
    );
    expect(sweeps.flatMap((s) => s.ended).find((r) => r.executionId === lost)).toMatchObject({ status: 'FAILED', taskCancelled: false });
    expect(await statusOf(lost)).toMatchObject({
      status: 'FAILED',
      error: `its Temporal workflow ${executionWorkflowId(lost)} is not known to Temporal (a namespace reset or lost, or past its retention): nothing runs it`,
    });
    const audit = await ctx.orm.em.fork().findOneOrFail(AuditLog, { action: 'execution.reconciled', resourceId: lost });
    expect(audit.changes).toMatchObject({ status: { from: 'RUNNING', to: 'FAILED' }, workflow: 'lost' });
    // Every sweep passed the other two by (the one in the window is in no page of older runs).
    expect(sweeps.flatMap((s) => s.ended).filter((r) => [queuedInTask, recent].includes(r.executionId))).toEqual([]);
    expect((await statusOf(queuedInTask)).status).toBe('QUEUED');
    expect((await statusOf(recent)).status).toBe('RUNNING');
    await ctx.orm.em
      .fork()
      .nativeUpdate(Execution, { id: { $in: [queuedInTask, recent] } }, { status: ExecutionStatus.CANCELLED, completedAt: new Date() });
    await http.post(`/api/executions/${taskRunning}/cancel`).set(auth()).expect(202);
    await hasStatus(taskRunning, 'CANCELLED');
  }, 120_000);

  it('a cancel of a run whose workflow is closed or unknown to Temporal ends it at once (before: the cancel was taken, or failed, and the run stayed live)', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 1 });
    // A run whose workflow Temporal does not know (past the namespace's retention), holding the only slot.
    const em = ctx.orm.em.fork();
    const unknown = makeExecution(em, await em.findOneOrFail(Agent, agent.id), ExecutionStatus.RUNNING);
    unknown.workflowId = executionWorkflowId(unknown.id);
    await em.flush();
    const terminated = await execute(agent.id, 'queued, terminated, then cancelled');
    const next = await execute(agent.id, 'waits for the slot');
    // Terminated while queued, and not reconciled yet: no activity of it runs anywhere.
    await ctx.temporal.client.workflow.getHandle(executionWorkflowId(terminated)).terminate('stuck');
    for (const id of [terminated, unknown.id]) {
      await http.post(`/api/executions/${id}/cancel`).set(auth()).expect(202);
      expect(await statusOf(id)).toMatchObject({ status: 'CANCELLED', error: CANCELLED_WITHOUT_WORKFLOW });
    }
    // The slot went to the run queued behind them, woken at once.
    await hasStatus(next, 'COMPLETED');
    expect(await ctx.orm.em.fork().count(AuditLog, { action: 'execution.cancel', resourceId: { $in: [terminated, unknown.id] } })).toBe(2);
  }, 120_000);

  it('the schedule is created once and brought up to date by every worker start', async () => {
    const scheduleId = `run-reconcile-test-${randomUUID()}`;
    const config = (intervalSeconds: number) => ({
      ...ctx.config,
      executions: { ...ctx.config.executions, reconcile: { intervalSeconds, lookbackSeconds: 600 } },
    });
    await ensureRunReconcileSchedule(ctx.temporal.client, config(3600), scheduleId);
    await ensureRunReconcileSchedule(ctx.temporal.client, config(1800), scheduleId);
    const schedule = ctx.temporal.client.schedule.getHandle(scheduleId);
    try {
      const described = await schedule.describe();
      expect(described.spec.intervals?.[0]?.every).toBe(1_800_000);
      expect(described.action).toMatchObject({
        workflowType: RUN_RECONCILE_WORKFLOW,
        args: [{ lookbackSeconds: 600, taskQueue: ctx.config.temporal.taskQueue }],
      });
      await schedule.trigger();
      const workflowId = await waitFor(
        async () => (await schedule.describe()).info.recentActions[0]?.action.workflow.workflowId,
        60_000,
        100,
      );
      expect(await ctx.temporal.client.workflow.getHandle(workflowId).result()).toMatchObject({ ended: [] });
    } finally {
      await schedule.delete();
    }
  }, 90_000);
});
