import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { EventSource } from 'eventsource';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { Execution } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import type { AgentExecutionPayload, AgentStatusPayload, AgentTodoPayload } from '../../../domain/events';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from '../../realtime/socket-events';
import { startApiServer, type ApiServer } from '../../server';
import { RealtimeHub } from '../../realtime/hub';
import { addMember, registerAccount, type Account } from '../../../test/api';
import { activeAgent, parseSse, registerHost, sseText, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { startMcpServer } from '../../../test/mcp-servers';

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

describe('executions, live monitoring and the master agent', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer({ ...ctx, config: { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } } }, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Exec Org');
    ({ host, serverId } = await registerHost(http, admin));
    closers.push(() => host.close());
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  async function socketFor(account: Account, url = api.url): Promise<FleetClient> {
    const socket: FleetClient = connectSocket(url, {
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

  function subscribe(socket: FleetClient, agentId: string): Promise<SubscribeAck> {
    return new Promise((resolve) => socket.emit('subscribe:agent', { agentId }, resolve));
  }

  function collect(socket: FleetClient) {
    const executions: AgentExecutionPayload[] = [];
    const todos: AgentTodoPayload[] = [];
    const statuses: AgentStatusPayload[] = [];
    socket.on('agent:execution', (e) => executions.push(e));
    socket.on('agent:todo', (e) => todos.push(e));
    socket.on('agent:status', (e) => statuses.push(e));
    return { executions, todos, statuses };
  }

  async function execute(agentId: string, prompt: string, account = admin): Promise<string> {
    const res = await http.post(`/api/agents/${agentId}/execute`).set(as(account)).send({ prompt }).expect(202);
    expect(res.body.workflowId).toBe(`execution-${res.body.executionId}`);
    return res.body.executionId as string;
  }

  async function finished(executionId: string, account = admin): Promise<Record<string, unknown>> {
    return waitFor(async () => {
      const res = await http.get(`/api/executions/${executionId}`).set(as(account));
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(res.body.status)
        ? (res.body as Record<string, unknown>)
        : undefined;
    });
  }

  it('runs a prompt: every event kind reaches a socket.io client and the SSE stream, in order, gapless', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const socket = await socketFor(admin);
    expect(await subscribe(socket, agent.id)).toEqual({ ok: true });
    const seen = collect(socket);
    const prompt = 'Summarise the repository\n\n  keep   spacing';
    const executionId = await execute(agent.id, prompt);
    const done = await finished(executionId);
    // Tracing is off here: no trace to name.
    expect(done).toMatchObject({ status: 'COMPLETED', output: `script engine: ${prompt}`, error: null, attempt: 1, traceId: null });
    // The script engine uses no model: it reports no tokens.
    expect(done.tokensUsed).toBeNull();
    expect((done.todos as { status: string }[]).every((t) => t.status === 'completed')).toBe(true);

    const call = host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId)!;
    expect(call.args).toMatchObject({ executionId, agentId: agent.id, agentName: agent.name, prompt });

    await waitFor(async () => seen.executions.some((e) => e.executionId === executionId && e.status === 'COMPLETED'));
    const mine = seen.executions.filter((e) => e.executionId === executionId);
    expect(mine.map((e) => e.seq)).toEqual(mine.map((_, i) => i + 1));
    expect(new Set(mine.map((e) => e.phase))).toEqual(new Set(['status', 'output', 'progress', 'todo']));
    expect(mine.filter((e) => e.phase === 'status').map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
    expect(
      mine
        .filter((e) => e.phase === 'output')
        .map((e) => e.output)
        .join(''),
    ).toBe(`script engine: ${prompt}`);
    expect(seen.todos.filter((t) => t.executionId === executionId).at(-1)).toMatchObject({ agentId: agent.id, completed: 2, total: 2 });
    await waitFor(async () => seen.statuses.filter((s) => s.agentId === agent.id).length >= 2);
    expect(seen.statuses.filter((s) => s.agentId === agent.id).map((s) => [s.previousStatus, s.status])).toEqual([
      ['ACTIVE', 'BUSY'],
      ['BUSY', 'ACTIVE'],
    ]);

    const sse = await http
      .get(`/api/executions/${executionId}/events`)
      .set(as(admin))
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse(sseText);
    expect(sse.headers['content-type']).toMatch(/text\/event-stream/);
    const events = parseSse(sse.body as string);
    expect(events.map((e) => Number(e.id))).toEqual(mine.map((e) => e.seq));
    expect(events.map((e) => e.event)).toEqual(mine.map((e) => e.phase));

    const resumed = parseSse(
      (
        await http
          .get(`/api/executions/${executionId}/events`)
          .set(as(admin))
          .set('Accept', 'text/event-stream')
          .set('Last-Event-ID', '5')
          .buffer(true)
          .parse(sseText)
      ).body as string,
    );
    expect(resumed.map((e) => Number(e.id))).toEqual(mine.filter((e) => e.seq > 5).map((e) => e.seq));

    // Resumed at or past the final status event: nothing more will ever come.
    for (const lastSeen of [mine.at(-1)!.seq, mine.at(-1)!.seq + 10]) {
      const afterEnd = await http
        .get(`/api/executions/${executionId}/events`)
        .set(as(admin))
        .set('Accept', 'text/event-stream')
        .set('Last-Event-ID', String(lastSeen))
        .expect(204);
      expect(afterEnd.text ?? '').toBe('');
    }

    const json = await http.get(`/api/executions/${executionId}/events`).query({ after: 2, limit: 3 }).set(as(admin)).expect(200);
    expect(json.body.items.map((e: { seq: number }) => e.seq)).toEqual([3, 4, 5]);
    expect(json.body.nextAfter).toBe(5);

    const history = await ctx.temporal.client.workflow.getHandle(`execution-${executionId}`).fetchHistory();
    expect(JSON.stringify(history)).not.toContain(host.token);
  });

  it('streams the execution as SSE when execute is called with Accept: text/event-stream', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const res = await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(as(admin))
      .set('Accept', 'text/event-stream')
      .send({ prompt: 'stream me [steps:4]' })
      .buffer(true)
      .parse(sseText)
      .expect(200);
    const events = parseSse(res.body as string);
    expect(events.map((e) => Number(e.id))).toEqual(events.map((_, i) => i + 1));
    expect(
      events
        .filter((e) => e.event === 'output')
        .map((e) => e.data.output)
        .join(''),
    ).toBe('chunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'COMPLETED' } });
  });

  it('an EventSource reading a finished run gets every event once, then stops: its reconnect after the end is a 204', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const executionId = await execute(agent.id, 'read me twice [steps:2]');
    await finished(executionId);
    let requests = 0;
    const received: { id: string; type: string }[] = [];
    const source = new EventSource(`${api.url}/api/executions/${executionId}/events`, {
      fetch: (input, init) => {
        requests += 1;
        return fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${admin.accessToken}` } });
      },
    });
    closers.push(() => source.close());
    for (const type of ['status', 'output', 'progress', 'todo'])
      source.addEventListener(type, (e) => received.push({ id: e.lastEventId, type }));
    const stopped = new Promise<number | undefined>(
      (resolve) => (source.onerror = (e) => source.readyState === EventSource.CLOSED && resolve(e.code)),
    );
    // The stream closes after the final status; EventSource reconnects with Last-Event-ID on its
    // own (after its retry delay) and stops for good on the 204.
    expect(await stopped).toBe(204);
    expect(requests).toBe(2);
    expect(received.map((e) => Number(e.id))).toEqual(received.map((_, i) => i + 1));
    expect(received.at(-1)!.type).toBe('status');
    const log = await http.get(`/api/executions/${executionId}/events`).set(as(admin)).expect(200);
    expect(received).toHaveLength(log.body.items.length);
  });

  it('cancel reaches the host as notifications/cancelled and the execution ends CANCELLED', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const executionId = await execute(agent.id, 'wait for me [hang]');
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId);
    const progress = await waitFor(async () => {
      const res = await http.get(`/api/executions/${executionId}`).set(as(admin));
      return res.body.status === 'RUNNING' && res.body.progress.seq >= 3 ? res.body.progress : undefined;
    });
    expect(progress).toMatchObject({ status: 'RUNNING' });
    await http.post(`/api/executions/${executionId}/cancel`).set(as(admin)).expect(202);
    await host.waitForCancellation(executionId, 30_000);
    expect(await finished(executionId)).toMatchObject({ status: 'CANCELLED', error: 'cancelled by request' });
    expect((await http.post(`/api/executions/${executionId}/cancel`).set(as(admin)).expect(409)).body.error.code).toBe('already_finished');
    expect((await http.get(`/api/agents/${agent.id}/status`).set(as(admin)).expect(200)).body).toMatchObject({
      status: 'ACTIVE',
      running: 0,
      queued: 0,
    });
  });

  it('records CANCELLED even when the host ignores the cancel', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const executionId = await execute(agent.id, 'stubborn [hang] [ignore-cancel]');
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId);
    await waitFor(async () => (await http.get(`/api/executions/${executionId}`).set(as(admin))).body.status === 'RUNNING');
    await http.post(`/api/executions/${executionId}/cancel`).set(as(admin)).expect(202);
    expect(await finished(executionId)).toMatchObject({ status: 'CANCELLED' });
  });

  it('queues executions above maxConcurrency and starts them in arrival order as slots free', async () => {
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 1 });
    const first = await execute(agent.id, 'first [hang]');
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === first);
    const second = await execute(agent.id, 'second [hang]');
    const third = await execute(agent.id, 'third');
    await new Promise((r) => setTimeout(r, 300));
    const statusOf = async (id: string) => (await http.get(`/api/executions/${id}`).set(as(admin))).body.status as string;
    expect([await statusOf(first), await statusOf(second), await statusOf(third)]).toEqual(['RUNNING', 'QUEUED', 'QUEUED']);
    expect((await http.get(`/api/agents/${agent.id}/status`).set(as(admin))).body).toMatchObject({ status: 'BUSY', running: 1, queued: 2 });

    await http.post(`/api/executions/${first}/cancel`).set(as(admin)).expect(202);
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === second);
    expect(await statusOf(third)).toBe('QUEUED');
    await http.post(`/api/executions/${second}/cancel`).set(as(admin)).expect(202);
    expect(await finished(third)).toMatchObject({ status: 'COMPLETED' });
    const order = host.calls
      .filter((c) => c.tool === 'execute_prompt' && [first, second, third].includes(c.args.executionId as string))
      .map((c) => c.args.executionId);
    expect(order).toEqual([first, second, third]);
  });

  it('fails with a clear message when the agent fails, the host is down, rejects the token, or lacks execute_prompt', async () => {
    const agent = await activeAgent(http, admin, serverId);
    expect(await finished(await execute(agent.id, 'break [fail]'))).toMatchObject({
      status: 'FAILED',
      error: expect.stringMatching(/^the agent reported an error: script engine: the \[fail\] directive fails this run/),
    });

    const doomed = await registerHost(http, admin);
    const doomedAgent = await activeAgent(http, admin, doomed.serverId);
    await doomed.host.close();
    expect(await finished(await execute(doomedAgent.id, 'anyone there?'))).toMatchObject({
      status: 'FAILED',
      error: expect.stringMatching(/^connection refused at 127\.0\.0\.1:\d+$/),
    });

    const locked = await registerHost(http, admin);
    closers.push(() => locked.host.close());
    const lockedAgent = await activeAgent(http, admin, locked.serverId);
    await http.put(`/api/servers/${locked.serverId}`).set(as(admin)).send({ masterToken: 'not-the-token' }).expect(200);
    expect(await finished(await execute(lockedAgent.id, 'let me in'))).toMatchObject({
      status: 'FAILED',
      error: 'the server rejected the master token (HTTP 401)',
    });

    const bare = await startMcpServer({ tools: ['provision_agent', 'activate_agent'] });
    closers.push(() => bare.close());
    const bareServer = await http
      .post('/api/servers')
      .set(as(admin))
      .send({ name: `bare-${randomUUID().slice(0, 6)}`, url: bare.url, masterToken: bare.token })
      .expect(201);
    const bareAgent = await activeAgent(http, admin, bareServer.body.id);
    expect(await finished(await execute(bareAgent.id, 'do it'))).toMatchObject({
      status: 'FAILED',
      error: 'the server does not offer execute_prompt',
    });
  });

  it('refuses to execute an agent that is not ACTIVE, and lets OPERATORs execute but not VIEWERs', async () => {
    const pending = await http
      .post('/api/agents')
      .set(as(admin))
      .send({ serverId, name: `pending-${randomUUID().slice(0, 6)}` })
      .expect(201);
    expect(
      (await http.post(`/api/agents/${pending.body.id}/execute`).set(as(admin)).send({ prompt: 'x' }).expect(409)).body.error.code,
    ).toBe('agent_not_active');
    const agent = await activeAgent(http, admin, serverId);
    const operator = await addMember(http, admin, 'OPERATOR');
    const viewer = await addMember(http, admin, 'VIEWER');
    await http.post(`/api/agents/${agent.id}/execute`).set(as(viewer)).send({ prompt: 'x' }).expect(403);
    const id = await execute(agent.id, 'operator run', operator);
    expect(await finished(id)).toMatchObject({ status: 'COMPLETED' });
    await http.get(`/api/executions/${id}`).set(as(viewer)).expect(200);
    const list = await http.get('/api/executions').query({ agentId: agent.id, status: 'COMPLETED' }).set(as(viewer)).expect(200);
    expect(list.body.items.map((e: { id: string }) => e.id)).toEqual([id]);
    expect(
      (await http.post(`/api/agents/${agent.id}/execute`).set(as(admin)).send({ prompt: '   ' }).expect(400)).body.error.details[0].path,
    ).toBe('body.prompt');
  });

  it('carries events too large for NOTIFY by id, and catches up after the LISTEN connection drops', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const socket = await socketFor(admin);
    await subscribe(socket, agent.id);
    const seen = collect(socket);
    const big = await execute(agent.id, 'big [bytes:20000]');
    await finished(big);
    await waitFor(async () => seen.executions.some((e) => e.executionId === big && e.status === 'COMPLETED'));
    expect(seen.executions.find((e) => e.executionId === big && e.phase === 'output' && (e.output ?? '').length === 20000)).toBeDefined();

    const during = await execute(agent.id, 'through the outage [steps:20] [delay:30]');
    await waitFor(async () => seen.executions.some((e) => e.executionId === during && e.phase === 'output'));
    ctx.events.simulateConnectionLoss();
    await finished(during);
    await waitFor(async () => seen.executions.some((e) => e.executionId === during && e.status === 'COMPLETED'));
    const mine = seen.executions.filter((e) => e.executionId === during);
    expect(mine.map((e) => e.seq)).toEqual(mine.map((_, i) => i + 1));
  });

  it('serves one audience from two API instances', async () => {
    const second = new RealtimeHub(ctx.config.database.url!, ctx.orm, ctx.logger);
    await second.start();
    const other = await startApiServer({ ...ctx, events: second }, 0, '127.0.0.1');
    closers.push(async () => {
      await other.close();
      await second.close();
    });
    const agent = await activeAgent(http, admin, serverId);
    const a = await socketFor(admin);
    const b = await socketFor(admin, other.url);
    await subscribe(a, agent.id);
    await subscribe(b, agent.id);
    const seenA = collect(a);
    const seenB = collect(b);
    const id = await execute(agent.id, 'for everyone');
    await finished(id);
    await waitFor(async () => [seenA, seenB].every((s) => s.executions.some((e) => e.executionId === id && e.status === 'COMPLETED')));
    expect(seenB.executions.filter((e) => e.executionId === id).map((e) => e.seq)).toEqual(
      seenA.executions.filter((e) => e.executionId === id).map((e) => e.seq),
    );
  });

  it('refuses a foreign organisation on every execution route and on subscribe:agent', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const id = await execute(agent.id, 'private');
    await finished(id);
    const stranger = await registerAccount(http, 'Stranger Exec Org');
    await http.get(`/api/executions/${id}`).set(as(stranger)).expect(404);
    await http.get(`/api/executions/${id}/events`).set(as(stranger)).expect(404);
    await http.get(`/api/executions/${id}/events`).set(as(stranger)).set('Accept', 'text/event-stream').expect(404);
    await http.post(`/api/executions/${id}/cancel`).set(as(stranger)).expect(404);
    await http.post(`/api/agents/${agent.id}/execute`).set(as(stranger)).send({ prompt: 'x' }).expect(404);
    expect((await http.get('/api/executions').set(as(stranger)).expect(200)).body.items).toEqual([]);
    const socket = await socketFor(stranger);
    expect(await subscribe(socket, agent.id)).toEqual({ error: { code: 'not_found', message: 'Agent not found' } });
    expect(await subscribe(socket, 'not-a-uuid')).toMatchObject({ error: { code: 'validation_failed' } });
    const refused: FleetClient = connectSocket(api.url, { auth: { token: 'garbage' }, transports: ['websocket'], reconnection: false });
    closers.push(() => refused.close());
    await expect(
      new Promise<void>((resolve, reject) => (refused.once('connect', () => resolve()), refused.once('connect_error', reject))),
    ).rejects.toThrow(/unauthorized/);
  });

  describe('master agent', () => {
    let master: { id: string };
    let masterServer: { host: AgentHost; serverId: string };

    beforeAll(async () => {
      masterServer = await registerHost(http, admin);
      closers.push(() => masterServer.host.close());
      master = await activeAgent(http, admin, masterServer.serverId, { role: 'MASTER', name: 'master' });
    });

    it('streams an execution on the MASTER agent', async () => {
      const res = await http
        .post('/api/master/execute')
        .set(as(admin))
        .send({ serverId: masterServer.serverId, prompt: 'plan the week' })
        .buffer(true)
        .parse(sseText)
        .expect(200);
      const events = parseSse(res.body as string);
      expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'COMPLETED', agentId: master.id } });
      expect(res.headers['x-execution-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('creates the agent the master specifies, PENDING_VALIDATION under the master', async () => {
      const res = await http
        .post('/api/master/create-agent')
        .set(as(admin))
        .send({
          serverId: masterServer.serverId,
          prompt:
            'I need someone for releases [spec]{"name":"release-bot","role":"WORKER","capabilities":["release","git"],"description":"Cuts releases"}',
        })
        .expect(201);
      expect(res.body).toMatchObject({
        name: 'release-bot',
        status: 'PENDING_VALIDATION',
        supervisorId: master.id,
        serverId: masterServer.serverId,
        capabilities: ['release', 'git'],
      });
      const call = masterServer.host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === res.body.executionId)!;
      expect(call.args.responseSchema).toMatchObject({ type: 'object', required: ['name', 'role'] });
    });

    it('answers 422 with the reasons when the specification is invalid', async () => {
      const res = await http
        .post('/api/master/create-agent')
        .set(as(admin))
        .send({ serverId: masterServer.serverId, prompt: '[spec]{"name":"bad name!","role":"EMPEROR"}' })
        .expect(422);
      expect(res.body.error.code).toBe('invalid_agent_spec');
      expect(res.body.error.details.details.map((d: { path: string }) => d.path).sort()).toEqual(['data.name', 'data.role']);
    });

    it('answers 502 master_failed with the run’s reason when the master’s run fails (its workflow fails too)', async () => {
      const res = await http
        .post('/api/master/create-agent')
        .set(as(admin))
        .send({ serverId: masterServer.serverId, prompt: 'no spec today [fail]' })
        .expect(502);
      expect(res.body.error).toMatchObject({
        code: 'master_failed',
        message: expect.stringContaining("The master agent's run FAILED: the agent reported"),
      });
      expect(res.body.error.details.executionId).toEqual(expect.any(String));
    });

    it('answers 409 when the server has no MASTER agent', async () => {
      const lonely = await registerHost(http, admin);
      closers.push(() => lonely.host.close());
      expect(
        (await http.post('/api/master/create-agent').set(as(admin)).send({ serverId: lonely.serverId, prompt: 'x' }).expect(409)).body.error
          .code,
      ).toBe('no_master');
    });
  });

  it('keeps the output tail and todos on the execution row', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const id = await execute(agent.id, 'persist');
    await finished(id);
    const row = await ctx.orm.em.fork().findOneOrFail(Execution, id);
    expect(row.todos).toHaveLength(2);
    expect(row.durationMs).toBeGreaterThanOrEqual(0);
  });
});
