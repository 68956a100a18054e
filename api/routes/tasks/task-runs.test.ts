import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { Agent, AgentStatus, AgentToolPermission, AssignmentMode, Organization, Task, TaskKind, ToolDefinition } from '../../../entities';
import { HOST_TOOLS } from '../../../lib/host-contract';
import type { AgentHost } from '../../../host/server';
import type { ExecutionStatusPayload, TaskOccurrencePayload } from '../../../domain/events';
import type { ClientToServerEvents, ServerToClientEvents } from '../../realtime/socket-events';
import { startApiServer, type ApiServer } from '../../server';
import { addMember, httpFor, registerAccount, type Account } from '../../../test/api';
import { activeAgent, hostWithAgent, parseSse, registerHost, sseText, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { startMcpServer } from '../../../test/mcp-servers';
import { taskApi, type Run } from '../../../test/tasks';
import { catalogEntry } from '../../../test/tool-fixtures';

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

describe('task runs: run now, overlap policies, assignment, cancel, timeout and retries', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let tasks: ReturnType<typeof taskApi>;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer({ ...ctx, config: { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } } }, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Task Runs Org');
    ({ host, serverId } = await registerHost(http, admin, { allowCommands: true }));
    await http.post(`/api/servers/${serverId}/test`).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    tasks = taskApi(http, admin);
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await worker?.stop();
    await host?.close();
    await ctx?.close();
  });

  async function socketFor(account: Account): Promise<FleetClient> {
    const socket: FleetClient = connectSocket(api.url, {
      auth: { token: account.accessToken },
      transports: ['websocket'],
      reconnection: false,
    });
    closers.push(() => socket.close());
    await new Promise<void>((resolve, reject) => (socket.once('connect', () => resolve()), socket.once('connect_error', reject)));
    return socket;
  }
  const cancelled = (executionId: string) => host.waitForCancellation(executionId, 30_000);
  const started = (executionId: string) => host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 60_000);

  it('runs now: SSE of the run, taskId on every event, task:occurrence and run statuses on the task and org rooms', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const task = await tasks.create({ agentId: agent.id, prompt: 'now [steps:2]' });
    const socket = await socketFor(admin);
    const occurrences: TaskOccurrencePayload[] = [];
    const statuses: ExecutionStatusPayload[] = [];
    socket.on('task:occurrence', (e) => occurrences.push(e));
    socket.on('execution:status', (e) => statuses.push(e));
    expect(await new Promise((resolve) => socket.emit('subscribe:task', { taskId: task.id }, resolve))).toEqual({ ok: true });
    expect(await new Promise((resolve) => socket.emit('subscribe:org', {}, resolve))).toEqual({ ok: true });

    const res = await http
      .post(`/api/tasks/${task.id}/run`)
      .set(tasks.auth)
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse(sseText)
      .expect(200);
    const events = parseSse(res.body as string);
    expect(events.map((e) => Number(e.id))).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.data.taskId === task.id)).toBe(true);
    expect(events.filter((e) => e.event === 'status').map((e) => e.data.status)).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
    const executionId = events[0]!.data.executionId as string;
    await waitFor(async () => occurrences.length >= 1 && statuses.some((s) => s.executionId === executionId && s.status === 'COMPLETED'));
    // Delivered to both rooms, received once by a socket in both.
    expect(occurrences).toEqual([
      expect.objectContaining({ taskId: task.id, executionId, status: 'RUNNING', trigger: 'manual', scheduledFor: null }),
    ]);
    expect(statuses.filter((s) => s.executionId === executionId).map((s) => s.status)).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
    expect(statuses.every((s) => s.executionId !== executionId || s.taskId === task.id)).toBe(true);
    const detail = await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200);
    expect(detail.body).toMatchObject({ runCount: 1, lastRun: { id: executionId, status: 'COMPLETED' } });
  });

  it('SKIP records a skipped occurrence, with its reason, while a run is still going', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const task = await tasks.create({ agentId: agent.id, prompt: 'long [hang]', overlapPolicy: 'SKIP' });
    const first = await tasks.run(task.id);
    await started(first);
    const second = await tasks.run(task.id);
    const skipped = await tasks.ended(second);
    expect(skipped).toMatchObject({ status: 'SKIPPED', trigger: 'manual', agentId: null, taskId: task.id });
    expect(skipped.error).toBe(`skipped: run ${first} (RUNNING) still going (overlap policy SKIP)`);
    expect((await tasks.runs(task.id, { status: 'SKIPPED' })).map((r) => r.id)).toEqual([second]);
    expect((await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200)).body).toMatchObject({
      skippedCount: 1,
      liveCount: 1,
      runCount: 1,
    });
    await http.post(`/api/tasks/${task.id}/cancel`).set(tasks.auth).send({}).expect(202);
    await cancelled(first);
    expect(await tasks.ended(first)).toMatchObject({ status: 'CANCELLED' });
  });

  it('BUFFER_ONE runs the buffered occurrence after the running one, and skips a second buffered one', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const task = await tasks.create({ agentId: agent.id, prompt: 'work [steps:4] [delay:250]', overlapPolicy: 'BUFFER_ONE' });
    const first = await tasks.run(task.id);
    await started(first);
    const second = await tasks.run(task.id);
    const waiting = await tasks.waitStatus(second, 'QUEUED');
    expect(waiting.agentId).toBeNull();
    const third = await tasks.run(task.id);
    expect(await tasks.ended(third)).toMatchObject({
      status: 'SKIPPED',
      error: `skipped: run ${second} (waiting its turn) is already buffered (overlap policy BUFFER_ONE)`,
    });
    const [a, b] = [await tasks.ended(first), await tasks.ended(second)];
    expect([a.status, b.status]).toEqual(['COMPLETED', 'COMPLETED']);
    expect(new Date(b.startedAt as string).getTime()).toBeGreaterThanOrEqual(new Date(a.completedAt as string).getTime());
    expect(b.agentId).toBe(agent.id);
  });

  it('CANCEL_OTHER cancels the running occurrence and starts after it; TERMINATE_OTHER ends it at once and starts now', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const cancelling = await tasks.create({ agentId: agent.id, prompt: 'replace me [hang]', overlapPolicy: 'CANCEL_OTHER' });
    const first = await tasks.run(cancelling.id);
    await started(first);
    const second = await tasks.run(cancelling.id);
    await cancelled(first);
    expect(await tasks.ended(first)).toMatchObject({ status: 'CANCELLED' });
    await started(second);
    expect(await tasks.waitStatus(second, 'RUNNING')).toMatchObject({ agentId: agent.id });

    const terminating = await tasks.create({ agentId: agent.id, prompt: 'replace me too [hang]', overlapPolicy: 'TERMINATE_OTHER' });
    const third = await tasks.run(terminating.id);
    await started(third);
    const fourth = await tasks.run(terminating.id);
    expect(await tasks.ended(third)).toMatchObject({
      status: 'CANCELLED',
      error: `terminated: occurrence ${fourth} replaced it (overlap policy TERMINATE_OTHER)`,
    });
    await cancelled(third);
    await started(fourth);
    const description = await ctx.temporal.client.workflow.getHandle(`task-run-${terminating.id}-${third}`).describe();
    expect(description.status.name).toBe('TERMINATED');
    for (const task of [cancelling, terminating]) await http.post(`/api/tasks/${task.id}/cancel`).set(tasks.auth).send({}).expect(202);
    expect(await tasks.ended(second)).toMatchObject({ status: 'CANCELLED' });
    expect(await tasks.ended(fourth)).toMatchObject({ status: 'CANCELLED' });
    await waitFor(async () => (await http.get(`/api/agents/${agent.id}/status`).set(tasks.auth)).body.running === 0);
  });

  it('AUTO and BY_CAPABILITY choose as specified and say why; no eligible agent is a FAILED occurrence with the reason', async () => {
    const other = await registerAccount(http, 'Assignment Org');
    const otherTasks = taskApi(http, other);
    const { host: otherHost, serverId: otherServer } = await registerHost(http, other);
    closers.push(() => otherHost.close());
    const none = await otherTasks.create({ assignmentMode: 'AUTO', prompt: 'p' });
    expect(await otherTasks.ended(await otherTasks.run(none.id))).toMatchObject({
      status: 'FAILED',
      error: 'no eligible agent: no ACTIVE agent on an ONLINE server',
      agentId: null,
    });

    const busy = await activeAgent(http, other, otherServer, { capabilities: ['git'], maxConcurrency: 2 });
    const idle = await activeAgent(http, other, otherServer, { capabilities: ['docker'] });
    await http.post(`/api/servers/${otherServer}/test`).auth(other.accessToken, { type: 'bearer' }).expect(200);
    const hanging = (
      await http
        .post(`/api/agents/${busy.id}/execute`)
        .auth(other.accessToken, { type: 'bearer' })
        .send({ prompt: 'busy [hang]' })
        .expect(202)
    ).body.executionId as string;
    await otherHost.waitForCall('execute_prompt', (c) => c.args.executionId === hanging);

    const auto = await otherTasks.create({ assignmentMode: 'AUTO', prompt: 'auto [steps:1]' });
    const autoRun = await otherTasks.ended(await otherTasks.run(auto.id));
    expect(autoRun).toMatchObject({ status: 'COMPLETED', agentId: idle.id });
    expect(autoRun.assignmentReason).toMatch(
      new RegExp(`^AUTO: 2 candidates; chose ${idle.name} on host-\\S+: 0 running, 0 queued, ONLINE \\d+ ms$`),
    );

    const byCap = await otherTasks.create({ assignmentMode: 'BY_CAPABILITY', requiredCapabilities: ['git'], prompt: 'git [steps:1]' });
    const capRun = await otherTasks.ended(await otherTasks.run(byCap.id));
    expect(capRun).toMatchObject({ status: 'COMPLETED', agentId: busy.id });
    expect(capRun.assignmentReason).toMatch(
      new RegExp(`^BY_CAPABILITY: 1 candidate with git; chose ${busy.name} on host-\\S+: 1 running, 0 queued, ONLINE \\d+ ms$`),
    );

    const nobody = await otherTasks.create({ assignmentMode: 'BY_CAPABILITY', requiredCapabilities: ['git', 'docker'], prompt: 'p' });
    expect(await otherTasks.ended(await otherTasks.run(nobody.id))).toMatchObject({
      status: 'FAILED',
      error: 'no eligible agent: no ACTIVE agent on an ONLINE server that holds every required capability (git, docker)',
    });
    await http.post(`/api/executions/${hanging}/cancel`).auth(other.accessToken, { type: 'bearer' }).expect(202);
  });

  it('AUTO breaks a tie in load by the lower last check latency of the server, then by the lower agent id', async () => {
    const org = await registerAccount(http, 'Latency Org');
    const orgTasks = taskApi(http, org);
    const near = await registerHost(http, org);
    const far = await registerHost(http, org);
    closers.push(
      () => near.host.close(),
      () => far.host.close(),
    );
    const onNear = await activeAgent(http, org, near.serverId);
    const onFar = await activeAgent(http, org, far.serverId);
    for (const { serverId: id } of [near, far])
      await http.post(`/api/servers/${id}/test`).auth(org.accessToken, { type: 'bearer' }).expect(200);
    // The latencies the last checks would have measured, set outright: loopback hosts all answer in a few ms.
    // The server-health schedule's sweep may rewrite a row between the update and the assignment; the
    // reason names the latency the assignment read, so a run that read a swept value is run again.
    const task = await orgTasks.create({ assignmentMode: 'AUTO', prompt: 'auto [steps:1]' });
    const runWith = async (latencies: Array<[string, number]>, readMs: number) => {
      for (let attempt = 1; ; attempt++) {
        for (const [serverId, ms] of latencies)
          await ctx.orm.em.getConnection().execute('update mcp_servers set last_latency_ms = ? where id = ?', [ms, serverId]);
        const run = await orgTasks.ended(await orgTasks.run(task.id));
        if (attempt === 3 || String(run.assignmentReason).endsWith(`ONLINE ${readMs} ms`)) return run;
      }
    };

    expect(
      await runWith(
        [
          [near.serverId, 5],
          [far.serverId, 500],
        ],
        5,
      ),
    ).toMatchObject({
      status: 'COMPLETED',
      agentId: onNear.id,
      assignmentReason: expect.stringMatching(/^AUTO: 2 candidates; chose \S+ on \S+: 0 running, 0 queued, ONLINE 5 ms$/),
    });
    expect(
      await runWith(
        [
          [near.serverId, 900],
          [far.serverId, 500],
        ],
        500,
      ),
    ).toMatchObject({
      status: 'COMPLETED',
      agentId: onFar.id,
      assignmentReason: expect.stringMatching(/ONLINE 500 ms$/),
    });
    expect(
      await runWith(
        [
          [near.serverId, 500],
          [far.serverId, 500],
        ],
        500,
      ),
    ).toMatchObject({ status: 'COMPLETED', agentId: [onNear.id, onFar.id].sort()[0] });
  });

  it('cancels one run, then all runs of the task: each reaches the host as notifications/cancelled; a waiting run never starts', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const task = await tasks.create({ agentId: agent.id, prompt: 'cancel me [hang]', overlapPolicy: 'ALLOW_ALL' });
    const runs = [await tasks.run(task.id), await tasks.run(task.id), await tasks.run(task.id)];
    for (const id of runs) await started(id);
    const one = await http.post(`/api/tasks/${task.id}/cancel`).set(tasks.auth).send({ executionId: runs[0] }).expect(202);
    expect(one.body).toEqual({ cancelled: [runs[0]] });
    await cancelled(runs[0]!);
    expect(await tasks.ended(runs[0]!)).toMatchObject({ status: 'CANCELLED' });
    expect((await tasks.execution(runs[1]!))!.status).toBe('RUNNING');
    expect(
      (await http.post(`/api/tasks/${task.id}/cancel`).set(tasks.auth).send({ executionId: runs[0] }).expect(409)).body.error.code,
    ).toBe('already_finished');

    await http.put(`/api/tasks/${task.id}`).set(tasks.auth).send({ overlapPolicy: 'BUFFER_ALL' }).expect(200);
    const waiting = await tasks.run(task.id);
    await tasks.waitStatus(waiting, 'QUEUED');
    const all = await http.post(`/api/tasks/${task.id}/cancel`).set(tasks.auth).send({}).expect(202);
    expect([...all.body.cancelled].sort()).toEqual([runs[1], runs[2], waiting].sort());
    await Promise.all([cancelled(runs[1]!), cancelled(runs[2]!)]);
    for (const id of [...runs, waiting]) expect(await tasks.ended(id)).toMatchObject({ status: 'CANCELLED' });
    expect(host.calls.some((c) => c.args.executionId === waiting)).toBe(false);
    await http.post(`/api/executions/${runs[0]}/cancel`).set(tasks.auth).expect(409);
  });

  it('applies timeoutMs and maxRetries: each TIMED_OUT or FAILED attempt is retried as a new run linked to the one before', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const timing = await tasks.create({ agentId: agent.id, prompt: 'too slow [hang]', timeoutMs: 1500, maxRetries: 1 });
    const first = await tasks.run(timing.id);
    const firstRun = await tasks.ended(first);
    expect(firstRun).toMatchObject({ status: 'TIMED_OUT', error: "the run did not finish within 1500 ms (the task's timeoutMs)" });
    await cancelled(first);
    const attempts = await waitFor(
      async () => {
        const list = await tasks.runs(timing.id);
        return list.length === 2 && list.every((r) => ['TIMED_OUT'].includes(r.status)) ? list : undefined;
      },
      20_000,
      200,
    );
    const retry = attempts.find((r) => r.id !== first)!;
    expect(retry).toMatchObject({ trigger: 'retry', retryOfId: first, agentId: agent.id });

    const failing = await tasks.create({ agentId: agent.id, prompt: 'broken [fail]', maxRetries: 2 });
    const failedFirst = await tasks.run(failing.id);
    const chain = await waitFor(
      async () => {
        const list = await tasks.runs(failing.id);
        return list.length === 3 && list.every((r) => r.status === 'FAILED') ? list : undefined;
      },
      120_000,
      200,
    );
    const byId = new Map(chain.map((r) => [r.id, r] as [string, Run]));
    const second = chain.find((r) => r.retryOfId === failedFirst)!;
    const third = chain.find((r) => r.retryOfId === second.id)!;
    expect([byId.get(failedFirst)!.trigger, second.trigger, third.trigger]).toEqual(['manual', 'retry', 'retry']);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await tasks.runs(failing.id)).toHaveLength(3);
  });

  it('does not count a wait for a person’s answer against timeoutMs on a task host; the running time around it still counts', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
    const answer = (id: string) =>
      http
        .post(`/api/executions/${id}/input`)
        .set(tasks.auth)
        .send({ action: 'accept', content: { answer: 'yes' } })
        .expect(200);
    const waiting = (id: string) => tasks.waitStatus(id, 'WAITING_INPUT');

    // Waits 3.5 s for the answer, longer than the task's 2.5 s: the run still completes.
    const asking = await tasks.create({ agentId: agent.id, prompt: '[ask:Go on?] done', timeoutMs: 2500 });
    const patient = await tasks.run(asking.id);
    await waiting(patient);
    await new Promise((r) => setTimeout(r, 3500));
    expect(await tasks.execution(patient)).toMatchObject({ status: 'WAITING_INPUT' });
    await answer(patient);
    expect(await tasks.ended(patient)).toMatchObject({
      status: 'COMPLETED',
      output: expect.stringContaining('asked "Go on?": accept {"answer":"yes"}'),
    });

    // After the answer the clock goes on: a run that then hangs is cut at 2.5 s of running time in all.
    const hanging = await tasks.create({ agentId: agent.id, prompt: '[ask:Go on?] [hang]', timeoutMs: 2500 });
    const stuck = await tasks.run(hanging.id);
    await waiting(stuck);
    await new Promise((r) => setTimeout(r, 3000));
    const answeredAt = Date.now();
    await answer(stuck);
    expect(await tasks.ended(stuck)).toMatchObject({
      status: 'TIMED_OUT',
      error: "the run did not finish within 2500 ms (the task's timeoutMs)",
    });
    // Cut by the task's clock, which went on after the answer, not by the run's own limit a minute
    // later; the bound leaves a loaded machine room for the re-attach, the cut and the polling.
    expect(Date.now() - answeredAt).toBeLessThan(30_000);
    await cancelled(stuck);
  });

  /** Grants one of the server's own MCP tools: an organisation's catalog entry of that name, granted to the agent. */

  it('says when a MANUAL task’s agent is deactivated or deleted, in GET /api/tasks/:id and on its next occurrence', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const task = await tasks.create({ agentId: agent.id, prompt: 'p' });
    await ctx.orm.em.fork().nativeUpdate(Agent, { id: agent.id }, { status: AgentStatus.INACTIVE });
    expect((await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200)).body.agentProblem).toBe(
      `the task's agent ${agent.name} is INACTIVE; it cannot run the task`,
    );
    expect(await tasks.ended(await tasks.run(task.id))).toMatchObject({
      status: 'FAILED',
      error: `the task's agent ${agent.name} is INACTIVE; it cannot run the task`,
    });
    await http.delete(`/api/agents/${agent.id}`).set(tasks.auth).expect(204);
    const detail = await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200);
    expect(detail.body).toMatchObject({
      agentId: null,
      agentProblem: "the task's agent was deleted; assign another agent (agentId) or switch to AUTO",
    });
    expect(await tasks.ended(await tasks.run(task.id))).toMatchObject({ status: 'FAILED', error: detail.body.agentProblem });
  });

  /**
   * A server that offers a tool of its own (`echo`) beside the contract's, in an organisation of
   * its own (so AUTO elsewhere in this suite never picks its agent), with a validated agent.
   */
  async function echoHost() {
    const owner = await registerAccount(http, `Echo Org ${randomUUID().slice(0, 6)}`);
    const own = taskApi(http, owner);
    const echo = await startMcpServer({ tools: [...HOST_TOOLS, 'echo'] });
    closers.push(() => echo.close());
    const registered = await http
      .post('/api/servers')
      .set(own.auth)
      .send({ name: `echo-${randomUUID().slice(0, 8)}`, url: echo.url, masterToken: echo.token })
      .expect(201);
    await http.post(`/api/servers/${registered.body.id}/test`).set(own.auth).expect(200);
    const agent = await activeAgent(http, owner, registered.body.id);
    const echoCalls = () => echo.calls.filter((c) => c.tool === 'echo');
    return { own, agent, echoCalls };
  }

  it('kind tool: refused with the reason when the agent is not granted the tool; nothing reaches the server', async () => {
    const { own, agent, echoCalls } = await echoHost();
    const task = await own.create({ agentId: agent.id, kind: 'tool', toolName: 'echo', toolArguments: { name: 'not granted' } });
    const run = await own.ended(await own.run(task.id));
    expect(run).toMatchObject({ status: 'FAILED', error: `refused: agent ${agent.name} is not granted the tool echo` });
    expect(echoCalls()).toEqual([]);
    const events = (await http.get(`/api/executions/${run.id}/events`).set(own.auth).expect(200)).body.items as Record<string, unknown>[];
    expect(events.map((e) => e.phase)).toEqual(['status', 'status', 'tool_call', 'tool_result', 'status']);
  });

  it('kind tool: calls the tool on the agent’s server; the run’s log has tool_call, tool_result and statuses, each with taskId', async () => {
    const { own, agent, echoCalls } = await echoHost();
    const tool = (
      await http
        .post('/api/tools')
        .set(own.auth)
        .send({ name: 'echo', category: 'mcp', installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' })
        .expect(201)
    ).body;
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(own.auth)
      .send({ permissions: [{ toolId: tool.id, canUse: true }] })
      .expect(200);
    const task = await own.create({ agentId: agent.id, kind: 'tool', toolName: 'echo', toolArguments: { name: 'hello' } });
    const run = await own.ended(await own.run(task.id));
    expect(run).toMatchObject({ status: 'COMPLETED', toolName: 'echo', agentId: agent.id, output: '{"ok":true,"tool":"echo"}' });
    expect(echoCalls()).toEqual([{ tool: 'echo', args: { name: 'hello' } }]);
    const events = (await http.get(`/api/executions/${run.id}/events`).set(own.auth).expect(200)).body.items as Record<string, unknown>[];
    expect(events.map((e) => [e.phase, e.status ?? null])).toEqual([
      ['status', 'QUEUED'],
      ['status', 'RUNNING'],
      ['tool_call', null],
      ['tool_result', null],
      ['status', 'COMPLETED'],
    ]);
    expect(events.every((e) => e.taskId === task.id)).toBe(true);
    expect(events[3]).toMatchObject({ toolCall: { name: 'echo', result: { ok: true, tool: 'echo', args: { name: 'hello' } } } });
  });

  it('kind tool: no tool of the host contract is a task target: 400 at create and update, and a task written before is refused at run time, its command never run', async () => {
    const operator = await addMember(http, admin, 'OPERATOR');
    const asOperator = taskApi(http, operator);
    const agent = await activeAgent(http, admin, serverId);
    const marker = path.join(os.tmpdir(), `mcp-fleet-reserved-${randomUUID()}`);
    const toolArguments = { name: 'x', versionCommand: `touch ${marker}; echo 1.0.0` };
    for (const toolName of [...HOST_TOOLS, 'Check_Tool']) {
      const res = await http
        .post('/api/tasks')
        .set(asOperator.auth)
        .send({ title: 't', agentId: agent.id, kind: 'tool', toolName, toolArguments })
        .expect(400);
      expect(res.body.error.details).toEqual([
        expect.objectContaining({
          path: 'body.toolName',
          code: 'platform_tool',
          message: expect.stringContaining(`${toolName} is a tool of the host contract`),
        }),
      ]);
    }
    const task = await asOperator.create({ agentId: agent.id, prompt: 'p' });
    const update = await http
      .put(`/api/tasks/${task.id}`)
      .set(asOperator.auth)
      .send({ kind: 'tool', toolName: 'check_tool', toolArguments })
      .expect(400);
    expect(update.body.error.details).toEqual([expect.objectContaining({ path: 'body.toolName', code: 'platform_tool' })]);

    // As an ADMIN could set it up before the names were reserved: a catalog entry check_tool,
    // granted to the agent (the host lists check_tool, so the grant is available), and the task.
    const em = ctx.orm.em.fork();
    const entry = await catalogEntry(
      ctx.orm,
      admin.organizationId,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' },
      { name: 'check_tool' },
    );
    em.create(AgentToolPermission, {
      organization: em.getReference(Organization, admin.organizationId),
      agent: em.getReference(Agent, agent.id),
      tool: em.getReference(ToolDefinition, entry.id),
    });
    await em.flush();
    await em.nativeUpdate(Task, { id: task.id }, { kind: TaskKind.TOOL, toolName: 'check_tool', toolArguments });

    // MANUAL: refused when its agent is resolved.
    const manual = await asOperator.ended(await asOperator.run(task.id));
    expect(manual).toMatchObject({
      status: 'FAILED',
      error: "check_tool is a tool of the host contract, called only by mcp-fleet itself; it cannot be a task's tool",
    });
    // AUTO: the agent is chosen at run time; the check before the call refuses it.
    await em.nativeUpdate(Task, { id: task.id }, { assignmentMode: AssignmentMode.AUTO, agent: null });
    const auto = await asOperator.ended(await asOperator.run(task.id));
    expect(auto).toMatchObject({
      status: 'FAILED',
      error: 'refused: check_tool is a tool of the host contract, called only by mcp-fleet itself; it cannot be called by a task',
    });
    expect(host.calls.some((c) => c.tool === 'check_tool' && c.args.versionCommand === toolArguments.versionCommand)).toBe(false);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses to delete a task with runs not ended (409) unless ?force=true, which cancels them', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const task = await tasks.create({ agentId: agent.id, prompt: 'forever [hang]' });
    const run = await tasks.run(task.id);
    await started(run);
    const refused = await http.delete(`/api/tasks/${task.id}`).set(tasks.auth).expect(409);
    expect(refused.body.error).toMatchObject({ code: 'task_running', details: { executionIds: [run] } });
    await http.delete(`/api/tasks/${task.id}`).query({ force: 'true' }).set(tasks.auth).expect(204);
    await cancelled(run);
    expect(await tasks.ended(run)).toMatchObject({ status: 'CANCELLED', taskId: task.id });
    await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(404);
  });
});

describe('run now answers with a run that exists', () => {
  let ctx: TestContext;
  let http: ReturnType<typeof httpFor>;
  let admin: Account;
  const hosts: AgentHost[] = [];
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Run Now Location Org');
  });
  afterAll(async () => {
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  it('its Location resolves at once, decided under the overlap policy, even with no worker yet; the workflow then runs it exactly once', async () => {
    // A worker for the agent's validation only: the runs below are answered while none polls.
    worker = await startTestWorker(ctx);
    const { host, agent } = await hostWithAgent(http, admin, hosts, {});
    const tasks = taskApi(http, admin);
    const task = await tasks.create({ agentId: agent.id, prompt: 'once [steps:1]', overlapPolicy: 'SKIP' });
    await worker.stop();
    worker = undefined;

    const first = await http.post(`/api/tasks/${task.id}/run`).set(tasks.auth).expect(202);
    expect(first.headers.location).toBe(`/api/executions/${first.body.executionId}`);
    expect(
      (
        await http
          .get(first.headers.location as string)
          .set(tasks.auth)
          .expect(200)
      ).body,
    ).toMatchObject({ id: first.body.executionId, taskId: task.id, status: 'RUNNING', trigger: 'manual', agentId: agent.id });
    expect(first.body.status).toBe('RUNNING');
    // The second occurrence meets the first under SKIP: decided SKIPPED before the answer, with its reason.
    const second = await http.post(`/api/tasks/${task.id}/run`).set(tasks.auth).expect(202);
    expect(second.body.status).toBe('SKIPPED');
    expect(
      (
        await http
          .get(second.headers.location as string)
          .set(tasks.auth)
          .expect(200)
      ).body,
    ).toMatchObject({ status: 'SKIPPED', error: expect.stringContaining(`skipped: run ${first.body.executionId} (RUNNING) still going`) });

    worker = await startTestWorker(ctx);
    expect(await tasks.ended(first.body.executionId)).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(await tasks.ended(second.body.executionId)).toMatchObject({ status: 'SKIPPED' });
    expect(host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === first.body.executionId)).toHaveLength(1);
    expect(host.calls.some((c) => c.args.executionId === second.body.executionId)).toBe(false);
    const result = await ctx.temporal.client.workflow.getHandle(first.body.workflowId as string).result();
    expect(result).toMatchObject({ executionId: first.body.executionId, status: 'COMPLETED', attempts: 1 });
    expect((await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200)).body).toMatchObject({
      runCount: 1,
      skippedCount: 1,
      liveCount: 0,
    });
  });
});
