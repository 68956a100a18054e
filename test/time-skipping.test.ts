/**
 * The long timers, run on Temporal's time-skipping test server (dev/temporal-test-server.ts):
 * a day of workflow time passes in seconds, because the server jumps to the next timer whenever
 * the client waits on a result and nothing else is due. Everything else is real: the API and
 * the worker from their composition roots, their activities against the harness's PostgreSQL,
 * real HTTP receivers and reference hosts. Each test checks that the simulated time it covered
 * is the timer's, and that the wall time it took is a small part of it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { AuditLog, Execution, Webhook, WebhookDelivery } from '../entities';
import { temporal } from '@temporalio/proto';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { SEARCH_ATTRIBUTE_NAMES } from '../lib/temporal';
import { installTemporalRuntime } from '../worker/runtime';
import { executionWorkflowId, inputTimeoutMessage, runResultOfFailure } from '../workflows/contracts/agent-execution';
import { agentRetireWorkflowId, type RetireResult } from '../workflows/contracts/agent-retire';
import { taskRunWorkflowId } from '../workflows/contracts/task-run';
import { WEBHOOK_RETRY_DELAYS_MS, webhookDeliveryWorkflowId, type WebhookDeliveryResult } from '../workflows/contracts/webhook-delivery';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, hostWithAgent, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

/**
 * How much faster than a real clock a test must run. Skipped time still costs the workflows'
 * own rechecks, each a few round trips (a queued run asks for its slot every 30 s, a waiting
 * one re-reads its question every 5 min): 3 to 15 s on a quiet 2-core machine, 79 s for the
 * task test at a load of 20. A ratio rather than a ceiling keeps the proof (a real clock runs
 * at 1×) without failing on a busy machine: 1.5 h simulated in at most 4.5 min.
 */
const SPEED_UP_AT_LEAST = 20;
const skipped = (wallMs: number, simulatedMs: number) => expect(wallMs * SPEED_UP_AT_LEAST).toBeLessThan(simulatedMs);
const HOUR = 3600_000;
const HALF_HOUR = HOUR / 2;

describe('long timers on the time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let admin: Account;
  const hosts: AgentHost[] = [];
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  /**
   * Waits on the workflow's end through the test environment's client (the wait that lets time
   * skip): its result, or the failure a run that did not complete ends its workflow with.
   * Simulated time is the workflow's own span on the server's clock, start to close.
   */
  async function endSkipping<T>(workflowId: string): Promise<{ result?: T; failure?: unknown; simulatedMs: number; wallMs: number }> {
    const wallFrom = Date.now();
    const ended = await env.client.workflow.result(workflowId).then(
      (result) => ({ result: result as T }),
      (failure: unknown) => ({ failure }),
    );
    const wallMs = Date.now() - wallFrom;
    const { startTime, closeTime } = await env.client.workflow.getHandle(workflowId).describe();
    return { ...ended, simulatedMs: closeTime!.getTime() - startTime.getTime(), wallMs };
  }

  const show = async (executionId: string) =>
    (await http.get(`/api/executions/${executionId}`).set(as()).expect(200)).body as Record<string, unknown> & { status: string };

  // A test server of its own for each test: skipped time does not go back, and the
  // activities date what they record (an input request's expiry) by the real clock, which a
  // server that already skipped a day would be ahead of.
  beforeEach(async () => {
    const executable = process.env.TEMPORAL_TEST_SERVER_PATH;
    if (!executable) throw new Error(process.env.TEMPORAL_TEST_SERVER_ERROR ?? 'the global setup found no Temporal test server');
    const base = loadConfig();
    // Before the environment's first connection, or the SDK installs its own runtime (which logs at INFO).
    installTemporalRuntime(createLogger(base, 'time-skipping'));
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: executable } } });
    // Every start carries mcp-fleet's search attributes. The test server has no ListSearchAttributes
    // (so not lib/temporal.ts's ensureSearchAttributes), but registers them all the same.
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(
        SEARCH_ATTRIBUTE_NAMES.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
      ),
    });
    ctx = await createTestContext({ temporal: { ...base.temporal, address: env.address, taskQueue: `time-skipping-${randomUUID()}` } });
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Time Skipping Org');
  });
  afterEach(async () => {
    await worker?.stop();
    await Promise.all(hosts.splice(0).map((h) => h.close()));
    await ctx?.close();
    await env?.teardown();
  });

  it('retries a webhook delivery on its schedule for about a day, then fails it and disables the endpoint', async () => {
    let requests = 0;
    const receiver: Server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
      const hook = (
        await http
          .post('/api/webhooks')
          .set(as())
          .send({ url, events: ['execution.failed'] })
          .expect(201)
      ).body as { id: string };
      const sent = (await http.post(`/api/webhooks/${hook.id}/test`).set(as()).expect(202)).body as { id: string };

      const { result, simulatedMs, wallMs } = await endSkipping<WebhookDeliveryResult>(webhookDeliveryWorkflowId(sent.id));
      const schedule = WEBHOOK_RETRY_DELAYS_MS.reduce((sum, ms) => sum + ms, 0);
      console.info(`webhook delivery: ${WEBHOOK_RETRY_DELAYS_MS.length + 1} attempts over ${simulatedMs} ms simulated in ${wallMs} ms`);
      expect(result).toEqual({ outcome: 'failed', attempts: WEBHOOK_RETRY_DELAYS_MS.length + 1 });
      expect(requests).toBe(WEBHOOK_RETRY_DELAYS_MS.length + 1);
      expect(simulatedMs).toBeGreaterThanOrEqual(schedule);
      expect(schedule).toBeGreaterThan(23 * HOUR);
      skipped(wallMs, simulatedMs);

      const em = ctx.orm.em.fork();
      expect(await em.findOneOrFail(WebhookDelivery, sent.id)).toMatchObject({ status: 'FAILED', attempts: 11, lastResponseCode: 500 });
      // A day of failures and no success: the endpoint is turned off, and that is audited.
      expect(await em.findOneOrFail(Webhook, hook.id)).toMatchObject({ enabled: false });
      expect(await em.count(AuditLog, { action: 'webhook.disabled', resourceId: hook.id })).toBe(1);
    } finally {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('gives up retiring an agent whose server stays unreachable for 12 h, and audits why', async () => {
    const { host, serverId } = await registerHost(http, admin);
    hosts.push(host);
    const agent = await activeAgent(http, admin, serverId);
    // The host goes away for good: every deactivate_agent attempt is refused at the connection.
    await host.close();
    await http.delete(`/api/agents/${agent.id}`).set(as()).expect(204);

    const { result, simulatedMs, wallMs } = await endSkipping<RetireResult>(agentRetireWorkflowId(agent.id));
    console.info(`agent retire: gave up after ${simulatedMs} ms simulated in ${wallMs} ms`);
    expect(result).toEqual({ removed: false, error: expect.stringMatching(/^the server stayed unreachable for 12h: ./) });
    // Attempts ran all along, at most 10 min apart: Temporal gives up at the last one whose
    // retry would land past the 12 h schedule-to-close, and its reason is the one kept.
    expect(simulatedMs).toBeGreaterThan(12 * HOUR - 10 * 60_000);
    expect(simulatedMs).toBeLessThanOrEqual(12 * HOUR);
    skipped(wallMs, simulatedMs);
    const audit = await ctx.orm.em.fork().find(AuditLog, { action: 'agent.retire', resourceId: agent.id });
    expect(audit.map((row) => row.changes)).toEqual([{ name: agent.name, server: serverId, removed: false, error: result?.error }]);
  });

  it("times out a run nobody answers within the default 24 h input timeout, and cancels the question's task on the host", async () => {
    const { host, agent } = await hostWithAgent(http, admin, hosts);
    const { executionId } = (
      await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt: '[ask:Anyone there?] done' }).expect(202)
    ).body as { executionId: string };
    // The reference host is a task host: the activity ends and the workflow waits on a timer.
    await waitFor(async () => (await show(executionId)).status === 'WAITING_INPUT');

    const { failure, simulatedMs, wallMs } = await endSkipping(executionWorkflowId(executionId));
    console.info(`input timeout: ${simulatedMs} ms simulated in ${wallMs} ms`);
    const message = inputTimeoutMessage(24 * HOUR);
    expect(message).toBe('no answer to the input request within 24 h');
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(runResultOfFailure((failure as WorkflowFailedError).cause)).toEqual({ status: 'TIMED_OUT', error: message });
    expect(simulatedMs).toBeGreaterThanOrEqual(24 * HOUR);
    skipped(wallMs, simulatedMs);

    expect(await show(executionId)).toMatchObject({ status: 'TIMED_OUT', error: message, pendingInput: null });
    await host.waitForTaskRequest('tasks/cancel');
    // The question expired with the run: a late answer is refused.
    await http.post(`/api/executions/${executionId}/input`).set(as()).send({ action: 'decline' }).expect(409);
  });

  it("times a task's run out after the task's timeoutMs and retries it maxRetries times, each attempt a new run", async () => {
    const { agent } = await hostWithAgent(http, admin, hosts);
    // A run waiting for an answer keeps the agent's only slot, so the task's runs stay QUEUED:
    // no activity runs meanwhile (one would hold the test server's clock), only the workflows' timers.
    const holder = (await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt: '[ask:Keep the slot?] done' }).expect(202))
      .body as { executionId: string };
    await waitFor(async () => (await show(holder.executionId)).status === 'WAITING_INPUT');
    const task = (
      await http
        .post('/api/tasks')
        .set(as())
        .send({ title: 'slow task', prompt: 'done', agentId: agent.id, timeoutMs: HALF_HOUR, maxRetries: 2 })
        .expect(201)
    ).body as { id: string };
    const { executionId } = (await http.post(`/api/tasks/${task.id}/run`).set(as()).expect(202)).body as { executionId: string };

    const { failure, simulatedMs, wallMs } = await endSkipping(taskRunWorkflowId(task.id, executionId));
    console.info(`task timeout and retries: ${simulatedMs} ms simulated in ${wallMs} ms`);
    const error = `the run did not finish within ${HALF_HOUR} ms (the task's timeoutMs)`;
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(((failure as WorkflowFailedError).cause as ApplicationFailure).details?.[0]).toMatchObject({
      status: 'TIMED_OUT',
      attempts: 3,
      error,
    });
    // Three attempts of half an hour each, and the waits between them (1 s, then 2 s).
    expect(simulatedMs).toBeGreaterThanOrEqual(3 * HALF_HOUR + 3000);
    skipped(wallMs, simulatedMs);

    const runs = await ctx.orm.em.fork().find(Execution, { task: task.id }, { orderBy: { createdAt: 'asc' } });
    expect(runs.map((run) => ({ status: run.status, error: run.error, retryOf: run.retryOf?.id ?? null }))).toEqual([
      { status: 'TIMED_OUT', error, retryOf: null },
      { status: 'TIMED_OUT', error, retryOf: runs[0]!.id },
      { status: 'TIMED_OUT', error, retryOf: runs[1]!.id },
    ]);
    expect(await show(holder.executionId)).toMatchObject({ status: 'WAITING_INPUT' });
  });
});
