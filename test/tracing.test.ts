import request from 'supertest';
import { SpanKind } from '@opentelemetry/api';
import { startApiServer, type ApiServer } from '../api/server';
import type { AgentHost } from '../host/server';
import { loadConfig, loadTracingConfig } from '../lib/config';
import { startTracing, type Tracing } from '../lib/tracing';
import { registerAccount, type Account } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { taskApi } from './tasks';
import { startOtlpReceiver, type ReceivedSpan } from './otlp-receiver';

/**
 * One run through the real stack (API, Temporal, worker, reference host) with tracing on,
 * exporting OTLP/HTTP JSON to a receiver in this test. API, worker and host share this process
 * and so one tracer provider: the spans' parentage is what is checked here, service names in
 * lib/tracing.test.ts.
 */
describe('one trace per request, from the API to the host', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let tracing: Tracing;
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    tracing = startTracing(
      loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }),
      'api',
    );
    // One-second schedules, for the occurrence below.
    ctx = await createTestContext({ tasks: { ...loadConfig().tasks, minIntervalSeconds: 1 } });
    worker = await startTestWorker(ctx, undefined, { tracing });
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Trace Org');
    ({ host, serverId } = await registerHost(http, admin));
  });
  afterAll(async () => {
    await host?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
    await tracing?.shutdown();
    await receiver?.close();
  });

  it('POST /api/agents/:id/execute: API → workflow start → workflow → activity → MCP call → host → engine, one trace id, each span the child of the one before', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const res = await http
      .post(`/api/agents/${agent.id}/execute`)
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ prompt: 'trace me' })
      .expect(202);
    const run = await waitFor(async () => {
      const got = await http.get(`/api/executions/${res.body.executionId}`).auth(admin.accessToken, { type: 'bearer' });
      return got.body.status === 'COMPLETED' && (got.body as { traceId: string | null });
    });

    const apiSpan = await waitFor(async () => {
      if (tracing.enabled) await tracing.spanProcessor.forceFlush();
      return receiver.spans.find((s) => s.name === 'POST /api/agents/:id/execute' && s.attributes['http.response.status_code'] === 202);
    });
    // The run's row names its trace, for an operator to jump there.
    expect(run.traceId).toBe(apiSpan.traceId);
    const inTrace = () => receiver.spans.filter((s) => s.traceId === apiSpan.traceId);
    const childOf = (parent: ReceivedSpan, name: RegExp, kind?: SpanKind) =>
      inTrace().find((s) => s.parentSpanId === parent.spanId && name.test(s.name) && (kind === undefined || s.kind === kind + 1));
    // Each link is awaited: the workflow's spans reach the exporter through the worker's sink, later than the activity's.
    const link = (parent: ReceivedSpan, name: RegExp, kind?: SpanKind) =>
      waitFor(async () => {
        if (tracing.enabled) await tracing.spanProcessor.forceFlush();
        return childOf(parent, name, kind);
      });

    expect(apiSpan).toMatchObject({
      kind: SpanKind.SERVER + 1,
      attributes: expect.objectContaining({ 'http.route': '/api/agents/:id/execute' }),
    });
    const start = await link(apiSpan, /^StartWorkflow:agentExecution/);
    const workflow = await link(start, /^RunWorkflow:agentExecution/);
    // The workflow runs several activities; the run's MCP call is made under one of them.
    const holdsTheCall = (start: ReceivedSpan) =>
      inTrace().some(
        (run) =>
          run.parentSpanId === start.spanId &&
          inTrace().some((call) => call.parentSpanId === run.spanId && call.name === 'tools/call execute_prompt'),
      );
    const scheduled = await waitFor(async () => {
      if (tracing.enabled) await tracing.spanProcessor.forceFlush();
      return inTrace().find((s) => s.parentSpanId === workflow.spanId && s.name.startsWith('StartActivity:') && holdsTheCall(s));
    });
    const activity = await link(scheduled, /^RunActivity:/);
    const mcpCall = await link(activity, /^tools\/call execute_prompt$/, SpanKind.CLIENT);
    expect(mcpCall.attributes).toMatchObject({
      'mcp.method': 'tools/call',
      'mcp.tool': 'execute_prompt',
      'mcp.server.id': serverId,
      'mcp.status': 'ok',
    });
    const hostSpan = await link(mcpCall, /^tools\/call execute_prompt$/, SpanKind.SERVER);
    expect(hostSpan.attributes).toMatchObject({ 'mcp.tool': 'execute_prompt', 'mcp.status': 'ok' });
    await link(hostSpan, /^engine /);
  });

  it("a task occurrence started by its Schedule starts a trace of its own, which its run's row names", async () => {
    const agent = await activeAgent(http, admin, serverId);
    const tasks = taskApi(http, admin);
    const task = await tasks.create({
      agentId: agent.id,
      executionMode: 'RECURRING',
      cronExpression: '* * * * * *',
      prompt: 'tick [steps:1]',
    });
    // Paused at its first occurrence: a schedule firing every second on a loaded machine makes
    // runs, and spans, faster than they end, and a span processor that has to drop some (its
    // queue holds 2,048) may drop the one this test looks for.
    await waitFor(async () => (await tasks.runs(task.id)).some((r) => r.trigger === 'schedule'), 60_000, 200);
    await http.post(`/api/tasks/${task.id}/pause`).set(tasks.auth).expect(200);
    const run = await waitFor(
      async () => (await tasks.runs(task.id, { status: 'COMPLETED' })).find((r) => r.trigger === 'schedule'),
      60_000,
      200,
    );
    expect(run.traceId).toMatch(/^[0-9a-f]{32}$/);
    const inTrace = () => receiver.spans.filter((s) => s.traceId === run.traceId);
    // Its root is the task run's workflow, not a request, and the host's span of its call is in it.
    const root = await waitFor(async () => {
      if (tracing.enabled) await tracing.spanProcessor.forceFlush();
      return inTrace().find((s) => s.parentSpanId === undefined);
    });
    expect(root.name).toMatch(/^RunWorkflow:/);
    await waitFor(async () => {
      if (tracing.enabled) await tracing.spanProcessor.forceFlush();
      return inTrace().some((s) => s.kind === SpanKind.SERVER + 1 && s.name === 'tools/call execute_prompt');
    });
    expect(inTrace().filter((s) => s.name.startsWith('POST ') || s.name.startsWith('GET '))).toEqual([]);
  });
});
