import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { Agent, AssignmentMode, ExecutionMode, ExecutionTrigger, Organization, Task, TaskKind } from '../../entities';
import { publishEvent } from '../../domain/events';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from './socket-events';
import { startExecution } from '../../domain/runs/start-execution';
import { addMember, registerAccount, type Account } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import { startApiServer, type ApiServer } from '../server';

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * The organisation-wide, server and task rooms: a dashboard's lists follow statuses of agents,
 * servers, runs and task occurrences; every room is CASL-checked in the caller's organisation.
 */
describe('realtime rooms beyond one agent', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let stranger: Account;
  let serverId: string;
  let agentId: string;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    const http = request(api.url);
    admin = await registerAccount(http, 'Rooms Org');
    stranger = await registerAccount(http, 'Rooms Stranger Org');
    const registered = await registerHost(http, admin);
    closers.push(() => registered.host.close());
    serverId = registered.serverId;
    agentId = (await activeAgent(http, admin, serverId)).id;
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  async function connect(account: Account): Promise<FleetClient> {
    const socket: FleetClient = connectSocket(api.url, {
      auth: { token: account.accessToken },
      transports: ['websocket'],
      reconnection: false,
    });
    closers.push(() => socket.close());
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    return socket;
  }

  function ask<E extends keyof ClientToServerEvents>(
    socket: FleetClient,
    event: E,
    body: Parameters<ClientToServerEvents[E]>[0],
  ): Promise<SubscribeAck> {
    return new Promise((resolve) => (socket.emit as (e: string, b: unknown, ack: (a: SubscribeAck) => void) => void)(event, body, resolve));
  }

  function makeTask(organizationId: string): Promise<Task> {
    const em = ctx.orm.em.fork();
    const task = em.create(Task, {
      organization: em.getReference(Organization, organizationId),
      title: 'nightly report',
      kind: TaskKind.PROMPT,
      prompt: 'report [steps:2]',
      assignmentMode: AssignmentMode.MANUAL,
      agent: em.getReference(Agent, agentId),
      executionMode: ExecutionMode.IMMEDIATE,
    });
    return em.flush().then(() => task);
  }

  it('the organisation room carries agent, server, run and task statuses of its own organisation only', async () => {
    const mine = await connect(admin);
    const theirs = await connect(stranger);
    expect(await ask(mine, 'subscribe:org', {})).toEqual({ ok: true });
    expect(await ask(theirs, 'subscribe:org', {})).toEqual({ ok: true });
    const seen: string[] = [];
    const leaked: string[] = [];
    for (const name of ['agent:status', 'server:status', 'execution:status', 'task:occurrence', 'server:tool'] as const) {
      mine.on(name, () => seen.push(name));
      theirs.on(name, () => leaked.push(name));
    }
    const task = await makeTask(admin.organizationId);
    const execution = await startExecution(
      ctx,
      { organizationId: admin.organizationId, userId: admin.userId, via: 'api' },
      {
        agent: await ctx.orm.em.fork().findOneOrFail(Agent, agentId, { populate: ['server'] }),
        prompt: 'run [steps:1]',
        trigger: ExecutionTrigger.API,
        taskId: task.id,
      },
    );
    const em = ctx.orm.em.fork();
    const at = new Date().toISOString();
    await publishEvent(em, {
      type: 'server:status',
      organizationId: admin.organizationId,
      serverId,
      status: 'DEGRADED',
      previousStatus: 'ONLINE',
      reason: 'test',
      at,
    });
    await publishEvent(em, {
      type: 'task:occurrence',
      organizationId: admin.organizationId,
      taskId: task.id,
      executionId: execution.id,
      status: 'SKIPPED',
      trigger: 'schedule',
      scheduledFor: at,
      reason: 'overlap',
      at,
    });
    await publishEvent(em, {
      type: 'server:tool',
      organizationId: admin.organizationId,
      serverId,
      toolId: task.id,
      toolName: 'git',
      status: 'INSTALLED',
      previousStatus: 'INSTALLING',
      version: '2.43.0',
      error: null,
      at,
    });
    await waitFor(async () =>
      ['agent:status', 'server:status', 'execution:status', 'task:occurrence', 'server:tool'].every((n) => seen.includes(n)),
    );
    const statuses: string[] = [];
    mine.on('execution:status', (p) => p.executionId === execution.id && statuses.push(p.status));
    await waitFor(async () => statuses.includes('COMPLETED') || (await ctx.orm.em.fork().findOne(Agent, agentId))?.status === 'ACTIVE');
    expect(leaked).toEqual([]);
  });

  it('a task room carries its runs and occurrences; a server room carries the server; foreign ones are refused', async () => {
    const task = await makeTask(admin.organizationId);
    const mine = await connect(admin);
    const theirs = await connect(stranger);
    expect(await ask(mine, 'subscribe:task', { taskId: task.id })).toEqual({ ok: true });
    expect(await ask(mine, 'subscribe:server', { serverId })).toEqual({ ok: true });
    expect(await ask(theirs, 'subscribe:task', { taskId: task.id })).toEqual({ error: { code: 'not_found', message: 'Task not found' } });
    expect(await ask(theirs, 'subscribe:server', { serverId })).toEqual({ error: { code: 'not_found', message: 'Server not found' } });
    expect(await ask(mine, 'subscribe:task', { taskId: 'nope' })).toEqual({
      error: { code: 'validation_failed', message: 'taskId must be a uuid' },
    });

    const phases: string[] = [];
    mine.on('agent:execution', (p) => p.taskId === task.id && phases.push(p.phase));
    const serverEvents: string[] = [];
    mine.on('server:status', (p) => p.serverId === serverId && serverEvents.push(p.status));
    await startExecution(
      ctx,
      { organizationId: admin.organizationId, userId: admin.userId, via: 'api' },
      {
        agent: await ctx.orm.em.fork().findOneOrFail(Agent, agentId, { populate: ['server'] }),
        prompt: 'run [steps:2]',
        trigger: ExecutionTrigger.API,
        taskId: task.id,
      },
    );
    await publishEvent(ctx.orm.em.fork(), {
      type: 'server:status',
      organizationId: admin.organizationId,
      serverId,
      status: 'OFFLINE',
      previousStatus: 'ONLINE',
      reason: 'test',
      at: new Date().toISOString(),
    });
    await waitFor(
      async () => phases.includes('output') && phases.filter((p) => p === 'status').length >= 3 && serverEvents.includes('OFFLINE'),
    );

    expect(await ask(mine, 'unsubscribe:task', { taskId: task.id })).toEqual({ ok: true });
    // A deleted task keeps its row for its history, but no longer has a live feed.
    await ctx.orm.em.fork().nativeUpdate(Task, { id: task.id }, { deletedAt: new Date() });
    expect(await ask(mine, 'subscribe:task', { taskId: task.id })).toEqual({ error: { code: 'not_found', message: 'Task not found' } });
  });

  it('a VIEWER may follow the organisation', async () => {
    const viewer = await addMember(request(api.url), admin, 'VIEWER');
    expect(await ask(await connect(viewer), 'subscribe:org', {})).toEqual({ ok: true });
  });
});
