import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { AgentHost } from '../../../host/server';
import { HOST_TOOLS } from '../../../lib/host-contract';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from '../../realtime/socket-events';
import { startApiServer, type ApiServer } from '../../server';
import { addMember, httpFor, registerAccount, type Account } from '../../../test/api';
import { activeAgent, registerHost, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { startMcpServer, type StreamableTestMcpServer } from '../../../test/mcp-servers';
import { loadConfig, type TaskLimits } from '../../../lib/config';
import { ExecutionMode, Task } from '../../../entities';
import { taskApi, type Run } from '../../../test/tasks';

describe('tasks: CRUD, validation, roles and their Temporal Schedules', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let agent: { id: string; name: string };
  let tasks: ReturnType<typeof taskApi>;
  let echoServer: StreamableTestMcpServer | undefined;
  const created: string[] = [];

  beforeAll(async () => {
    // The one-second schedules below are what the minimum interval refuses; these tests need
    // them to see schedules fire, so the floor is one second here ('minimum interval' tests it).
    ctx = await createTestContext({ tasks: { ...loadConfig().tasks, minIntervalSeconds: 1 } });
    worker = await startTestWorker(ctx);
    api = await startApiServer({ ...ctx, config: { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } } }, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Tasks Org');
    ({ host, serverId } = await registerHost(http, admin));
    await http.post(`/api/servers/${serverId}/test`).auth(admin.accessToken, { type: 'bearer' }).expect(200);
    agent = await activeAgent(http, admin, serverId);
    tasks = taskApi(http, admin);
  });
  afterAll(async () => {
    // A schedule left behind would keep firing into the next tests' Temporal.
    for (const id of created)
      await ctx.temporal.client.schedule
        .getHandle(`task-${id}`)
        .delete()
        .catch(() => undefined);
    await api?.close();
    await worker?.stop();
    await host?.close();
    await echoServer?.close();
    await ctx?.close();
  });

  const create = async (body: Record<string, unknown>) => {
    const task = await tasks.create({ agentId: agent.id, prompt: 'hello', ...body });
    created.push(task.id);
    return task;
  };
  const invalid = async (body: Record<string, unknown>, path = '/api/tasks', method: 'post' | 'put' = 'post') => {
    const res = await http[method](path).set(tasks.auth).send(body).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    return (res.body.error.details as { path: string; message: string; code: string }[]).map((d) => ({
      path: d.path,
      code: d.code,
      message: d.message,
    }));
  };
  const describeSchedule = (taskId: string) => ctx.temporal.client.schedule.getHandle(`task-${taskId}`).describe();

  it('creates, reads, lists, updates and deletes a task; the run history outlives it', async () => {
    const task = await create({
      title: 'Daily triage',
      description: 'triage {{repo}}',
      prompt: 'Triage {{ repo }} for {{team}} [steps:1]',
      promptVariables: { repo: 'mcp-fleet', team: 'core' },
      priority: 'HIGH',
      maxRetries: 1,
      timeoutMs: 60_000,
    });
    expect(task).toMatchObject({
      title: 'Daily triage',
      kind: 'prompt',
      executionMode: 'IMMEDIATE',
      assignmentMode: 'MANUAL',
      agentId: agent.id,
      overlapPolicy: 'SKIP',
      timezone: 'UTC',
      enabled: true,
      runCount: 0,
      skippedCount: 0,
      nextRunTimes: [],
      scheduleId: null,
      agentProblem: null,
      createdById: admin.userId,
    });

    const detail = await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200);
    expect(detail.body).toMatchObject({ id: task.id, lastRun: null, priority: 'HIGH' });

    const runId = await tasks.run(task.id);
    const run = await tasks.ended(runId);
    expect(run).toMatchObject({ status: 'COMPLETED', trigger: 'manual', agentId: agent.id, prompt: 'Triage mcp-fleet for core [steps:1]' });
    expect(run.assignmentReason).toMatch(new RegExp(`^MANUAL: the task's agent ${agent.name}`));

    const updated = await http
      .put(`/api/tasks/${task.id}`)
      .set(tasks.auth)
      .send({ title: 'Weekly triage', promptVariables: { repo: 'other', team: 'ops' }, description: null })
      .expect(200);
    expect(updated.body).toMatchObject({
      title: 'Weekly triage',
      description: null,
      runCount: 1,
      promptVariables: { repo: 'other', team: 'ops' },
    });
    expect(updated.body.lastRunAt).not.toBeNull();

    const list = await http
      .get('/api/tasks')
      .query({ text: 'weekly', executionMode: 'IMMEDIATE', enabled: 'true' })
      .set(tasks.auth)
      .expect(200);
    expect(list.body.items.map((t: { id: string }) => t.id)).toEqual([task.id]);
    expect(
      (await http.get('/api/tasks').query({ executionMode: 'RECURRING', text: 'weekly' }).set(tasks.auth).expect(200)).body.items,
    ).toEqual([]);

    await http.delete(`/api/tasks/${task.id}`).set(tasks.auth).expect(204);
    await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(404);
    const history = await http.get('/api/executions').query({ taskId: task.id }).set(tasks.auth).expect(200);
    expect(history.body.items.map((e: { id: string }) => e.id)).toEqual([runId]);
    const audit = await http.get('/api/audit').query({ resourceType: 'task', resourceId: task.id }).set(tasks.auth).expect(200);
    expect(audit.body.items.map((a: { action: string }) => a.action).sort()).toEqual([
      'task.create',
      'task.delete',
      'task.run',
      'task.update',
    ]);
  });

  it('answers 400 naming the field: bad cron, bad zone, past time, unknown or empty placeholder, a tool not on the server or bad arguments', async () => {
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', executionMode: 'RECURRING', cronExpression: '61 * * * *' })).toEqual(
      [expect.objectContaining({ path: 'body.cronExpression', code: 'invalid_cron' })],
    );
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', executionMode: 'RECURRING', cronExpression: '0 9 * *' })).toEqual([
      expect.objectContaining({ path: 'body.cronExpression', message: expect.stringContaining('got 4') }),
    ]);
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', executionMode: 'RECURRING', cronExpression: '0 9 13 * 5' })).toEqual(
      [expect.objectContaining({ path: 'body.cronExpression', message: expect.stringContaining('not both') })],
    );
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', executionMode: 'RECURRING', cronExpression: '0 12 L * *' })).toEqual(
      [expect.objectContaining({ path: 'body.cronExpression', message: expect.stringContaining('day of month') })],
    );
    expect(
      await invalid({
        title: 't',
        agentId: agent.id,
        prompt: 'p',
        executionMode: 'RECURRING',
        cronExpression: '0 9 * * *',
        timezone: 'Mars/Olympus',
      }),
    ).toEqual([expect.objectContaining({ path: 'body.timezone', code: 'invalid_timezone' })]);
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', executionMode: 'RECURRING' })).toEqual([
      expect.objectContaining({ path: 'body.cronExpression', code: 'required' }),
    ]);
    expect(
      await invalid({
        title: 't',
        agentId: agent.id,
        prompt: 'p',
        executionMode: 'SCHEDULED',
        scheduledAt: new Date(Date.now() - 60_000).toISOString(),
      }),
    ).toEqual([expect.objectContaining({ path: 'body.scheduledAt', code: 'in_the_past' })]);
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'Hi {{who}} from {{team}}', promptVariables: { team: ' ' } })).toEqual([
      expect.objectContaining({
        path: 'body.prompt',
        code: 'unknown_placeholder',
        message: 'placeholder {{who}} has no value in promptVariables',
      }),
      expect.objectContaining({ path: 'body.promptVariables.team', code: 'unfilled_placeholder' }),
    ]);
    expect(await invalid({ title: 't', prompt: 'p' })).toEqual([expect.objectContaining({ path: 'body.agentId', code: 'required' })]);
    expect(await invalid({ title: 't', prompt: 'p', assignmentMode: 'BY_CAPABILITY' })).toEqual([
      expect.objectContaining({ path: 'body.requiredCapabilities' }),
    ]);
    // The reference host offers only the contract's tools, none of which a task may call.
    expect(await invalid({ title: 't', agentId: agent.id, kind: 'tool', toolName: 'nope' })).toEqual([
      expect.objectContaining({ path: 'body.toolName', code: 'unknown_tool', message: expect.stringMatching(/has no tool nope$/) }),
    ]);
    for (const toolName of ['execute_prompt', 'check_tool', 'Install_Tool']) {
      expect(await invalid({ title: 't', agentId: agent.id, kind: 'tool', toolName })).toEqual([
        expect.objectContaining({ path: 'body.toolName', code: 'platform_tool' }),
      ]);
    }
    // A server with a tool of its own: offered by name, its arguments checked against its input schema.
    echoServer = await startMcpServer({ tools: [...HOST_TOOLS, 'echo'] });
    const registered = await http
      .post('/api/servers')
      .set(tasks.auth)
      .send({ name: `echo-${Date.now()}`, url: echoServer.url, masterToken: echoServer.token })
      .expect(201);
    await http.post(`/api/servers/${registered.body.id}/test`).set(tasks.auth).expect(200);
    const echoAgent = await activeAgent(http, admin, registered.body.id);
    expect(await invalid({ title: 't', agentId: echoAgent.id, kind: 'tool', toolName: 'nope' })).toEqual([
      expect.objectContaining({
        path: 'body.toolName',
        code: 'unknown_tool',
        message: expect.stringMatching(/has no tool nope \(it offers echo\)$/),
      }),
    ]);
    expect(await invalid({ title: 't', agentId: echoAgent.id, kind: 'tool', toolName: 'echo', toolArguments: { name: 42 } })).toEqual([
      expect.objectContaining({ path: 'body.toolArguments.name' }),
    ]);
    expect(await invalid({ title: 't', agentId: agent.id, prompt: 'p', overlapPolicy: 'SOMETIMES', cronExpression: 5 })).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'body.overlapPolicy' }),
        expect.objectContaining({ path: 'body.cronExpression' }),
      ]),
    );
    const task = await create({ prompt: 'hello {{x}}', promptVariables: { x: 'y' } });
    expect(await invalid({ prompt: 'hello {{z}}' }, `/api/tasks/${task.id}`, 'put')).toEqual([
      expect.objectContaining({ path: 'body.prompt', code: 'unknown_placeholder' }),
    ]);
    expect(await invalid({}, `/api/tasks/${task.id}`, 'put')).toEqual([expect.objectContaining({ message: 'give at least one field' })]);
    // A tool task on the server's real tool list is accepted.
    await create({ agentId: echoAgent.id, kind: 'tool', toolName: 'echo', toolArguments: { name: 'git' }, prompt: undefined });
  });

  it('previews a schedule the way Temporal runs it, or says what is wrong', async () => {
    const preview = await http
      .post('/api/tasks/preview-schedule')
      .set(tasks.auth)
      .send({ cronExpression: '30 9 * * MON-FRI', timezone: 'Europe/Paris', count: 3 })
      .expect(200);
    expect(preview.body.nextRunTimes).toHaveLength(3);
    for (const at of preview.body.nextRunTimes as string[]) {
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Paris',
        weekday: 'short',
        hour: '2-digit',
        minute: '2-digit',
      }).format(new Date(at));
      expect(local).toMatch(/^(Mon|Tue|Wed|Thu|Fri) 09:30$/);
    }
    expect(
      (await http.post('/api/tasks/preview-schedule').set(tasks.auth).send({ cronExpression: '0 0 31 2 *' }).expect(400)).body.error
        .details[0],
    ).toMatchObject({ path: 'body.cronExpression', message: expect.stringContaining('never fires') });
    expect(
      (await http.post('/api/tasks/preview-schedule').set(tasks.auth).send({ cronExpression: '0 9 * * *', timezone: '+02:00' }).expect(400))
        .body.error.details[0],
    ).toMatchObject({ path: 'body.timezone' });
  });

  it('keeps a RECURRING task and its Temporal Schedule in step: nextRunTimes as Temporal describes them, paused when disabled, updated on PUT, gone on delete', async () => {
    const specs: [string, string][] = [
      ['0 9 * * 1-5', 'Europe/Paris'],
      ['15 */2 * * *', 'Australia/Lord_Howe'],
      ['30 2 * * *', 'America/New_York'],
      ['*/10 30 * * * *', 'Asia/Tokyo'],
      ['@monthly', 'UTC'],
    ];
    for (const [cronExpression, timezone] of specs) {
      const task = await create({ executionMode: 'RECURRING', cronExpression, timezone });
      const [detail, described, preview] = await Promise.all([
        http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200),
        describeSchedule(task.id),
        http.post('/api/tasks/preview-schedule').set(tasks.auth).send({ cronExpression, timezone }).expect(200),
      ]);
      const temporal = described.info.nextActionTimes.slice(0, 5).map((d) => d.toISOString());
      expect(detail.body.nextRunTimes).toEqual(temporal);
      expect(preview.body.nextRunTimes).toEqual(temporal);
      expect(task.nextRunTimes).toEqual(temporal);
      expect(detail.body.nextRunAt).toBe(temporal[0]);
      expect(described.state.paused).toBe(false);
      expect(described.policies.overlap).toBe('ALLOW_ALL');
      expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'taskRun', workflowId: `task-run-${task.id}` });
      expect(
        described.typedSearchAttributes
          .getAll()
          .map((p) => [p.key.name, p.value])
          .sort(),
      ).toEqual(
        [
          ['ExecutionKind', 'task-run'],
          ['OrganizationId', admin.organizationId],
          ['TaskId', task.id],
          ['AgentId', agent.id],
        ].sort(),
      );
    }

    const task = await create({ executionMode: 'RECURRING', cronExpression: '0 9 * * *' });
    const paused = await http.post(`/api/tasks/${task.id}/pause`).set(tasks.auth).expect(200);
    expect(paused.body).toMatchObject({ enabled: false, nextRunTimes: [], nextRunAt: null });
    expect((await describeSchedule(task.id)).state.paused).toBe(true);
    await http.post(`/api/tasks/${task.id}/resume`).set(tasks.auth).expect(200);
    expect((await describeSchedule(task.id)).state.paused).toBe(false);
    await http.put(`/api/tasks/${task.id}`).set(tasks.auth).send({ enabled: false }).expect(200);
    expect((await describeSchedule(task.id)).state.paused).toBe(true);
    await http
      .put(`/api/tasks/${task.id}`)
      .set(tasks.auth)
      .send({ enabled: true, cronExpression: '45 17 * * *', timezone: 'Asia/Kolkata' })
      .expect(200);
    const described = await describeSchedule(task.id);
    expect(described.state.paused).toBe(false);
    expect(described.spec.timezone).toBe('Asia/Kolkata');
    expect(described.info.nextActionTimes[0]!.toISOString()).toMatch(/T12:15:00\.000Z$/);
    await http.put(`/api/tasks/${task.id}`).set(tasks.auth).send({ executionMode: 'IMMEDIATE' }).expect(200);
    await expect(describeSchedule(task.id)).rejects.toThrow();
    await http.put(`/api/tasks/${task.id}`).set(tasks.auth).send({ executionMode: 'RECURRING' }).expect(200);
    await describeSchedule(task.id);
    await http.delete(`/api/tasks/${task.id}`).set(tasks.auth).expect(204);
    await expect(describeSchedule(task.id)).rejects.toThrow();
  });

  it('fires a RECURRING task on its own (a one-second spec): each occurrence a run with trigger schedule and its scheduled time', async () => {
    const task = await create({
      executionMode: 'RECURRING',
      cronExpression: '* * * * * *',
      prompt: 'tick [steps:1]',
      overlapPolicy: 'ALLOW_ALL',
    });
    const runs = await waitFor(
      async () => {
        const list = await tasks.runs(task.id, { status: 'COMPLETED' });
        return list.length >= 2 ? list : undefined;
      },
      20_000,
      200,
    );
    await http.post(`/api/tasks/${task.id}/pause`).set(tasks.auth).expect(200);
    for (const run of runs) {
      expect(run).toMatchObject({ trigger: 'schedule', agentId: agent.id, taskId: task.id });
      expect(run.scheduledFor).toMatch(/:\d\d\.000Z$/);
    }
    const detail = await http.get(`/api/tasks/${task.id}`).set(tasks.auth).expect(200);
    expect(detail.body.runCount).toBeGreaterThanOrEqual(2);
    expect(detail.body.lastRun).not.toBeNull();
    const calls = host.calls.filter((c) => c.tool === 'execute_prompt' && runs.some((r) => r.id === c.args.executionId));
    expect(calls).toHaveLength(runs.length);
  });

  it('records, on resume, the occurrences a paused task missed: SKIPPED with their scheduled times, the reason, the count in the audit', async () => {
    const recurring = await create({ executionMode: 'RECURRING', cronExpression: '* * * * * *', prompt: 'tick [steps:1]', enabled: false });
    const oneOff = await create({
      executionMode: 'SCHEDULED',
      scheduledAt: new Date(Date.now() + 1500).toISOString(),
      prompt: 'once [steps:1]',
      enabled: false,
    });
    expect(recurring.pausedAt).toEqual(expect.any(String));
    const from = Date.parse(recurring.pausedAt as string);
    await new Promise((r) => setTimeout(r, 3200));
    const resumed = await http.post(`/api/tasks/${recurring.id}/resume`).set(tasks.auth).expect(200);
    const to = Date.now();
    // Paused again at once: the one-second schedule would otherwise go on firing.
    await http.post(`/api/tasks/${recurring.id}/pause`).set(tasks.auth).expect(200);
    expect(resumed.body.pausedAt).toBeNull();

    const paused = (runs: Run[]) => runs.filter((r) => r.error === 'skipped: the task was paused');
    const missed = paused(await tasks.runs(recurring.id, { status: 'SKIPPED' }));
    expect(missed.length).toBeGreaterThanOrEqual(3);
    const times = missed.map((r) => Date.parse(r.scheduledFor!)).sort((a, b) => a - b);
    expect(times[0]).toBeGreaterThan(from);
    expect(times.at(-1)).toBeLessThanOrEqual(to);
    expect(times.every((t, i) => t % 1000 === 0 && (i === 0 || t - times[i - 1]! === 1000))).toBe(true);
    expect(missed.every((r) => r.trigger === 'schedule' && r.agentId === null)).toBe(true);
    expect((await http.get(`/api/tasks/${recurring.id}`).set(tasks.auth).expect(200)).body.skippedCount).toBeGreaterThanOrEqual(
      missed.length,
    );
    const audit = await http.get('/api/audit').query({ action: 'task.resume', limit: 100 }).set(tasks.auth).expect(200);
    expect(audit.body.items.find((a: { resourceId: string }) => a.resourceId === recurring.id).changes).toEqual({
      missedWhilePaused: missed.length,
    });

    // A one-off whose time passed while paused: one SKIPPED occurrence at its time, and it never runs.
    await http.post(`/api/tasks/${oneOff.id}/resume`).set(tasks.auth).expect(200);
    const [once] = await tasks.runs(oneOff.id);
    expect(once).toMatchObject({
      status: 'SKIPPED',
      error: 'skipped: the task was paused',
      scheduledFor: new Date(Math.ceil(Date.parse(oneOff.scheduledAt as string) / 1000) * 1000).toISOString(),
    });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await tasks.runs(oneOff.id)).toHaveLength(1);
  });

  it('fires a SCHEDULED task once, on its own, a few seconds ahead', async () => {
    const at = new Date(Date.now() + 3000);
    const task = await create({ executionMode: 'SCHEDULED', scheduledAt: at.toISOString(), prompt: 'once [steps:1]' });
    const expected = new Date(Math.ceil(at.getTime() / 1000) * 1000).toISOString();
    expect(task.nextRunTimes).toEqual([expected]);
    const d0 = await describeSchedule(task.id);
    expect(d0.info.nextActionTimes.map((d) => d.toISOString())).toEqual([expected]);
    const [run] = await waitFor(
      async () => {
        const list = await tasks.runs(task.id);
        return list.length ? list : undefined;
      },
      20_000,
      200,
    );
    expect(run).toMatchObject({ trigger: 'schedule', scheduledFor: expected });
    expect(await tasks.ended(run!.id)).toMatchObject({ status: 'COMPLETED' });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await tasks.runs(task.id)).toHaveLength(1);
  });

  it('lets a VIEWER read and an OPERATOR manage; another organisation gets 404 on every task route and is refused on subscribe', async () => {
    const task = await create({ executionMode: 'RECURRING', cronExpression: '0 9 * * *' });
    const viewer = await addMember(http, admin, 'VIEWER');
    const operator = await addMember(http, admin, 'OPERATOR');
    const as = (a: Account) => ({ Authorization: `Bearer ${a.accessToken}` });
    await http.get(`/api/tasks/${task.id}`).set(as(viewer)).expect(200);
    await http.get(`/api/tasks/${task.id}/executions`).set(as(viewer)).expect(200);
    await http.post('/api/tasks').set(as(viewer)).send({ title: 'x', agentId: agent.id, prompt: 'p' }).expect(403);
    for (const [method, path] of [
      ['put', ''],
      ['post', '/run'],
      ['post', '/cancel'],
      ['post', '/pause'],
      ['delete', ''],
    ] as const) {
      await http[method](`/api/tasks/${task.id}${path}`)
        .set(as(viewer))
        .send(method === 'put' ? { title: 'no' } : {})
        .expect(403);
    }
    const own = await taskApi(http, operator).create({ agentId: agent.id, prompt: 'by an operator' });
    await http.put(`/api/tasks/${own.id}`).set(as(operator)).send({ title: 'mine' }).expect(200);
    await http.delete(`/api/tasks/${own.id}`).set(as(operator)).expect(204);

    const stranger = await registerAccount(http, 'Other Org');
    const theirs = (path: string) => `/api/tasks/${task.id}${path}`;
    for (const [method, path, body] of [
      ['get', '', undefined],
      ['put', '', { title: 'x' }],
      ['delete', '', undefined],
      ['post', '/run', undefined],
      ['post', '/cancel', {}],
      ['post', '/pause', undefined],
      ['post', '/resume', undefined],
      ['get', '/executions', undefined],
    ] as const) {
      const res = await http[method](theirs(path))
        .set(as(stranger))
        .send(body ?? {});
      expect([method, path, res.status]).toEqual([method, path, 404]);
    }
    expect((await http.get('/api/tasks').set(as(stranger)).expect(200)).body.items).toEqual([]);
    await http.post('/api/tasks').set(as(stranger)).send({ title: 'x', agentId: agent.id, prompt: 'p' }).expect(400);

    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = connectSocket(api.url, {
      auth: { token: stranger.accessToken },
      transports: ['websocket'],
      reconnection: false,
    });
    await new Promise<void>((resolve, reject) => (socket.once('connect', () => resolve()), socket.once('connect_error', reject)));
    const refused = await new Promise<SubscribeAck>((resolve) => socket.emit('subscribe:task', { taskId: task.id }, resolve));
    expect(refused).toEqual({ error: { code: 'not_found', message: 'Task not found' } });
    socket.close();
    expect((await describeSchedule(task.id)).state.paused).toBe(false);
  });

  it('limits run now with the execute rules and task writes with the save-task rules (429 with Retry-After)', async () => {
    const limited = await createTestContext({
      rateLimits: {
        ...ctx.config.rateLimits,
        'execute.user': { limit: 2, windowSeconds: 3600 },
        'save-task.user': { limit: 2, windowSeconds: 3600 },
      },
    });
    try {
      const limitedHttp = httpFor(limited);
      const account = await registerAccount(limitedHttp, 'Limited Org');
      const auth = { Authorization: `Bearer ${account.accessToken}` };
      const { host: own, serverId: ownServer } = await registerHost(limitedHttp, account);
      const ownAgent = (await limitedHttp.post('/api/agents').set(auth).send({ serverId: ownServer, name: 'limited' }).expect(201)).body
        .id as string;
      const task = (await limitedHttp.post('/api/tasks').set(auth).send({ title: 't', agentId: ownAgent, prompt: 'p' }).expect(201)).body
        .id as string;
      await limitedHttp.put(`/api/tasks/${task}`).set(auth).send({ title: 'u' }).expect(200);
      const refused = await limitedHttp.put(`/api/tasks/${task}`).set(auth).send({ title: 'v' }).expect(429);
      expect(refused.body.error).toMatchObject({ code: 'rate_limited', details: { rule: 'save-task.user' } });
      await limitedHttp.post(`/api/tasks/${task}/run`).set(auth).expect(202);
      await limitedHttp.post(`/api/tasks/${task}/run`).set(auth).expect(202);
      const tooMany = await limitedHttp.post(`/api/tasks/${task}/run`).set(auth).expect(429);
      expect(tooMany.headers['retry-after']).toBeDefined();
      expect(tooMany.body.error.details.rule).toBe('execute.user');
      await own.close();
    } finally {
      await limited.close();
    }
  });
});

describe('limits on recurring tasks: the minimum interval and the cap per organisation', () => {
  let ctx: TestContext;
  const scheduled: string[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    for (const id of scheduled)
      await ctx.temporal.client.schedule
        .getHandle(`task-${id}`)
        .delete()
        .catch(() => undefined);
    await ctx?.close();
  });

  /** The API with these limits, and an organisation of its own. */
  async function orgWith(limits: Partial<TaskLimits>) {
    const http = httpFor({ ...ctx, config: { ...ctx.config, tasks: { ...ctx.config.tasks, ...limits } } });
    const admin = await registerAccount(http, 'Limits Org');
    const auth = { Authorization: `Bearer ${admin.accessToken}` };
    const save = async (body: Record<string, unknown>, id?: string) => {
      const res = await (id ? http.put(`/api/tasks/${id}`) : http.post('/api/tasks'))
        .set(auth)
        .send(
          id
            ? body
            : { title: 'recurring', prompt: 'p', assignmentMode: 'AUTO', executionMode: 'RECURRING', cronExpression: '0 0 1 1 *', ...body },
        );
      if (res.status < 300 && res.body.id) scheduled.push(res.body.id as string);
      return res;
    };
    return { http, admin, auth, save };
  }
  const problem = (res: request.Response) => (res.body.error.details as { path: string; code: string; message: string }[])[0]!;

  it('refuses a cron that fires closer than TASK_MIN_INTERVAL_SECONDS (60 s by default), seconds fields, the turn of a day and daylight saving included', async () => {
    expect(ctx.config.tasks.minIntervalSeconds).toBe(60);
    const { http, auth, save } = await orgWith({});
    const everySecond = await save({ cronExpression: '* * * * * *' }).then((res) => res.status === 400 && problem(res));
    expect(everySecond).toEqual({
      path: 'body.cronExpression',
      code: 'too_frequent',
      message:
        'fires 1 s apart at its closest (00:00:00 and 00:00:01); a recurring task may fire at most once every 60 s (TASK_MIN_INTERVAL_SECONDS)',
    });
    expect(problem(await save({ cronExpression: '*/30 * * * * *' }))).toMatchObject({
      code: 'too_frequent',
      message: expect.stringContaining('fires 30 s apart'),
    });
    expect((await save({ cronExpression: '* * * * *', timezone: 'Europe/Paris' })).status).toBe(201);
    expect(
      problem(await http.post('/api/tasks/preview-schedule').set(auth).send({ cronExpression: '*/10 * * * * *' }).expect(400)),
    ).toMatchObject({ path: 'body.cronExpression', code: 'too_frequent' });

    // A task changed to fire too often, or enabled again when it does, is refused the same way.
    const daily = await save({ cronExpression: '0 9 * * *' });
    expect(daily.status).toBe(201);
    expect(problem(await save({ cronExpression: '0,30 * * * * *' }, daily.body.id))).toMatchObject({ code: 'too_frequent' });

    // Two hours apart on the wall clock, one hour apart in real time when Paris skips 02:00.
    const hourly = await orgWith({ minIntervalSeconds: 7200 });
    expect((await hourly.save({ cronExpression: '0 1,3 * * *', timezone: 'UTC' })).status).toBe(201);
    const paris = await hourly.save({ cronExpression: '0 1,3 * * *', timezone: 'Europe/Paris' });
    expect(paris.status).toBe(400);
    expect(problem(paris)).toMatchObject({
      path: 'body.cronExpression',
      code: 'too_frequent',
      message: expect.stringMatching(
        /^fires 3600 s apart at its closest \(\d{4}-03-\d\dT00:00:00\.000Z and \d{4}-03-\d\dT01:00:00\.000Z \(the daylight-saving change in Europe\/Paris\)\); .* 7200 s/,
      ),
    });

    // A disabled task's schedule is checked when it is set too.
    expect(problem(await save({ cronExpression: '* * * * * *', enabled: false }))).toMatchObject({ code: 'too_frequent' });

    // Saved under a lower floor, a task keeps running: it can be renamed and disabled; enabling it again checks it.
    const lenient = await orgWith({ minIntervalSeconds: 1 });
    const fast = await lenient.save({ cronExpression: '*/5 * * * * *' });
    expect(fast.status).toBe(201);
    const strict = httpFor(ctx);
    const strictAuth = lenient.auth;
    await strict.put(`/api/tasks/${fast.body.id}`).set(strictAuth).send({ title: 'renamed' }).expect(200);
    await strict.put(`/api/tasks/${fast.body.id}`).set(strictAuth).send({ enabled: false }).expect(200);
    expect(problem(await strict.post(`/api/tasks/${fast.body.id}/resume`).set(strictAuth).expect(400))).toMatchObject({
      path: 'body.cronExpression',
      code: 'too_frequent',
      message: expect.stringContaining('fires 5 s apart'),
    });
    expect(problem(await strict.put(`/api/tasks/${fast.body.id}`).set(strictAuth).send({ enabled: true }).expect(400))).toMatchObject({
      code: 'too_frequent',
    });
  });

  it('caps the enabled RECURRING tasks of an organisation (TASK_MAX_RECURRING): a 400 naming the cap on create, on becoming recurring and on resume', async () => {
    const { http, auth, admin, save } = await orgWith({ maxRecurringPerOrganization: 2 });
    await save({}).then((res) => expect(res.status).toBe(201));
    const second = await save({});
    expect(second.status).toBe(201);
    const third = await save({});
    expect(third.status).toBe(400);
    expect(problem(third)).toEqual({
      path: 'body.executionMode',
      code: 'recurring_task_limit',
      message:
        'your organisation already has 2 enabled recurring tasks, the most it may have (TASK_MAX_RECURRING = 2); disable or delete one first',
    });
    // Disabled ones, one-offs and run-now tasks do not count.
    const disabled = await save({ enabled: false });
    expect(disabled.status).toBe(201);
    const immediate = await save({ executionMode: 'IMMEDIATE', cronExpression: null });
    expect(immediate.status).toBe(201);
    expect(problem(await http.post(`/api/tasks/${disabled.body.id}/resume`).set(auth).expect(400))).toMatchObject({
      path: 'body.enabled',
      code: 'recurring_task_limit',
    });
    expect(problem(await save({ enabled: true }, disabled.body.id))).toMatchObject({ path: 'body.enabled', code: 'recurring_task_limit' });
    expect(problem(await save({ executionMode: 'RECURRING', cronExpression: '0 0 1 1 *' }, immediate.body.id))).toMatchObject({
      path: 'body.executionMode',
      code: 'recurring_task_limit',
    });
    // A refused change is rolled back, schedule included: the task stays disabled and paused.
    expect((await http.get(`/api/tasks/${disabled.body.id}`).set(auth).expect(200)).body).toMatchObject({ enabled: false });
    expect((await ctx.temporal.client.schedule.getHandle(`task-${disabled.body.id}`).describe()).state.paused).toBe(true);
    // Room made: pausing one lets another go.
    await http.post(`/api/tasks/${second.body.id}/pause`).set(auth).expect(200);
    await http.post(`/api/tasks/${disabled.body.id}/resume`).set(auth).expect(200);
    expect(
      await ctx.orm.em
        .fork()
        .count(Task, { organization: admin.organizationId, executionMode: ExecutionMode.RECURRING, enabled: true, deletedAt: null }),
    ).toBe(2);
  });

  it('holds under saves at once: 8 parallel creates under a cap of 3 leave 3 tasks, and the refused ones leave no schedule', async () => {
    const { admin, save } = await orgWith({ maxRecurringPerOrganization: 3 });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => save({ title: `racer ${i}` })));
    expect(answers.map((res) => res.status).sort()).toEqual([201, 201, 201, 400, 400, 400, 400, 400]);
    expect(answers.filter((res) => res.status === 400).every((res) => problem(res).code === 'recurring_task_limit')).toBe(true);
    const kept = await ctx.orm.em.fork().find(Task, { organization: admin.organizationId, enabled: true, deletedAt: null });
    expect(kept).toHaveLength(3);
    // Schedules are listed from Temporal's visibility store, a moment behind.
    const expected = kept.map((t) => `task-${t.id}`).sort();
    await waitFor(
      async () => {
        const schedules: string[] = [];
        for await (const schedule of ctx.temporal.client.schedule.list({ query: `OrganizationId = '${admin.organizationId}'` }))
          schedules.push(schedule.scheduleId);
        return JSON.stringify(schedules.sort()) === JSON.stringify(expected);
      },
      20_000,
      250,
    );
  });
});
