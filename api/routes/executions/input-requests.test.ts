import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import {
  Agent,
  AgentStatus,
  AuditLog,
  Execution,
  ExecutionInput,
  ExecutionInputStatus,
  ExecutionStatus,
  ExecutionTrigger,
  Organization,
} from '../../../entities';
import type { InputRequiredPayload } from '../../../domain/events';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from '../../realtime/socket-events';
import { eventsAfter } from '../../../domain/runs/execution-log';
import { finishExecution } from '../../../domain/runs/finish-execution';
import { expireInput, markInputDelivered, requestInput, type InputRequestOutcome } from '../../../domain/runs/inputs';
import { acquireSlot } from '../../../domain/runs/slots';
import { addMember, registerAccount, type Account } from '../../../test/api';
import { makeAgent, makeServer } from '../../../test/factories';
import { waitFor } from '../../../test/fleet';
import { createTestContext, type TestContext } from '../../../test/harness';
import { startApiServer, type ApiServer } from '../../server';

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

const QUESTION = {
  message: 'May I force-push to main?',
  requestedSchema: {
    type: 'object',
    properties: {
      answer: { type: 'string', minLength: 1 },
      approve: { type: 'boolean' },
      level: { type: 'string', enum: ['low', 'high'] },
      count: { type: 'integer', minimum: 1 },
    },
    required: ['answer', 'approve'],
  },
};

/**
 * Input requests through the API on a real PostgreSQL: a run asks (the domain command the
 * worker's elicitation handler calls), a person answers over HTTP. No workflow runs here: the
 * answer's signal finds none, and the database row stays the authority.
 */
describe('input requests: asking, answering, the inbox', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let admin: Account;
  let operator: Account;
  let viewer: Account;
  let stranger: Account;
  let agentId: string;
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const em = () => ctx.orm.em.fork();
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Inbox Org');
    operator = await addMember(http, admin, 'OPERATOR');
    viewer = await addMember(http, admin, 'VIEWER');
    stranger = await registerAccount(http, 'Inbox Stranger Org');
    const setup = em();
    const server = makeServer(setup, setup.getReference(Organization, admin.organizationId));
    const agent = makeAgent(setup, server);
    agent.status = AgentStatus.ACTIVE;
    await setup.flush();
    agentId = agent.id;
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await ctx?.close();
  });

  /** A run that has its slot (RUNNING, agent BUSY), as the workflow leaves it before execute_prompt. */
  async function runningExecution(onAgent = agentId): Promise<Execution> {
    const tx = em();
    const execution = tx.create(Execution, {
      organization: tx.getReference(Organization, admin.organizationId),
      agent: tx.getReference(Agent, onAgent),
      trigger: ExecutionTrigger.API,
      status: ExecutionStatus.RUNNING,
      prompt: 'deploy',
      startedAt: new Date(),
    });
    await tx.flush();
    await tx.nativeUpdate(Agent, onAgent, { status: AgentStatus.BUSY });
    return execution;
  }

  async function ask(
    executionId: string,
    question: { message: string; requestedSchema: Record<string, unknown> } = QUESTION,
    taskId?: string,
  ): Promise<InputRequestOutcome> {
    return requestInput(em(), { executionId, ...question, ...(taskId ? { taskId } : {}) }, ctx.config.executions.inputTimeoutMs);
  }

  async function pendingOf(executionId: string): Promise<ExecutionInput> {
    const outcome = await ask(executionId);
    if (outcome.state !== 'pending') throw new Error(`expected a pending question, got ${outcome.state}`);
    return outcome.input;
  }

  const answer = (executionId: string, body: unknown, account = admin) =>
    http
      .post(`/api/executions/${executionId}/input`)
      .set(as(account))
      .send(body as object);
  const statusOf = async (executionId: string) => (await em().findOneOrFail(Execution, executionId)).status;
  const agentStatus = async () => (await em().findOneOrFail(Agent, agentId)).status;

  it('a question makes the run and its agent WAITING_INPUT, is logged, and is asked once however often the host repeats it', async () => {
    const execution = await runningExecution();
    const first = await ask(execution.id, QUESTION, 'task-1');
    expect(first).toMatchObject({
      state: 'pending',
      created: true,
      input: { status: ExecutionInputStatus.PENDING, message: QUESTION.message, taskId: 'task-1' },
    });
    const again = await ask(
      execution.id,
      {
        ...QUESTION,
        requestedSchema: { required: QUESTION.requestedSchema.required, properties: QUESTION.requestedSchema.properties, type: 'object' },
      },
      'task-1',
    );
    expect(again).toMatchObject({ state: 'pending', created: false });
    expect(again.state === 'pending' && again.input.id).toBe(first.state === 'pending' && first.input.id);
    expect(await statusOf(execution.id)).toBe(ExecutionStatus.WAITING_INPUT);
    expect(await agentStatus()).toBe(AgentStatus.WAITING_INPUT);
    const inputId = first.state === 'pending' ? first.input.id : '';
    const events = await eventsAfter(em(), execution.id, 0);
    expect(events.map((e) => [e.phase, e.status])).toEqual([
      ['status', 'WAITING_INPUT'],
      ['input_required', undefined],
    ]);
    expect(events[1]!.input).toEqual({
      inputId,
      message: QUESTION.message,
      requestedSchema: QUESTION.requestedSchema,
      expiresAt: expect.any(String),
    });
    // The default timeout: 24 h.
    const expiresIn = new Date((events[1]!.input as { expiresAt: string }).expiresAt).getTime() - Date.now();
    expect(expiresIn).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(expiresIn).toBeLessThanOrEqual(24 * 3600_000);
    // A second, different question while one is open is refused (the host declines it).
    expect(
      await ask(execution.id, { message: 'Something else?', requestedSchema: { type: 'object', properties: { x: { type: 'string' } } } }),
    ).toEqual({
      state: 'refused',
      reason: 'another question of this run is waiting for its answer',
    });
  });

  it('refuses a question whose schema is not a flat form, and a question for a run that ended', async () => {
    const execution = await runningExecution();
    const nested = await ask(execution.id, {
      message: 'nested?',
      requestedSchema: { type: 'object', properties: { a: { type: 'object', properties: {} } } },
    });
    expect(nested).toMatchObject({ state: 'refused', reason: expect.stringMatching(/not a flat form/) });
    await finishExecution(em(), execution.id, { status: 'COMPLETED' });
    expect(await ask(execution.id)).toEqual({ state: 'refused', reason: 'the execution is already COMPLETED' });
  });

  it('GET /executions/:id shows the pending question and ?status=WAITING_INPUT lists the waiting runs (the inbox)', async () => {
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    const detail = await http.get(`/api/executions/${execution.id}`).set(as(viewer)).expect(200);
    expect(detail.body.status).toBe('WAITING_INPUT');
    expect(detail.body.pendingInput).toEqual({
      inputId: input.id,
      message: QUESTION.message,
      requestedSchema: QUESTION.requestedSchema,
      expiresAt: input.expiresAt.toISOString(),
      createdAt: expect.any(String),
    });
    const inbox = await http.get('/api/executions').query({ status: 'WAITING_INPUT', limit: 100 }).set(as(viewer)).expect(200);
    expect(inbox.body.items.map((e: { id: string }) => e.id)).toContain(execution.id);
    expect(inbox.body.items.every((e: { status: string }) => e.status === 'WAITING_INPUT')).toBe(true);
    const running = await runningExecution();
    expect((await http.get(`/api/executions/${running.id}`).set(as(viewer)).expect(200)).body.pendingInput).toBeNull();
  });

  it('accept with fitting content: 200, audited with who answered, logged without the content, the run RUNNING again; a second answer is 409', async () => {
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    const content = { answer: 'yes, once', approve: true, level: 'high', count: 2 };
    const res = await answer(execution.id, { action: 'accept', content }, operator).expect(200);
    expect(res.body).toEqual({ inputId: input.id, status: 'ANSWERED' });

    const row = await em().findOneOrFail(ExecutionInput, input.id);
    expect(row).toMatchObject({ status: ExecutionInputStatus.ANSWERED, action: 'accept', content, answeredBy: { id: operator.userId } });
    expect(row.answeredAt).toBeInstanceOf(Date);
    expect(await statusOf(execution.id)).toBe(ExecutionStatus.RUNNING);
    expect(await agentStatus()).toBe(AgentStatus.BUSY);
    const audits = await em().find(AuditLog, { action: 'execution.input', resourceId: execution.id });
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      actor: { id: operator.userId },
      actorEmail: operator.email,
      changes: { inputId: input.id, action: 'accept' },
    });
    const events = await eventsAfter(em(), execution.id, 0);
    expect(events.slice(-2).map((e) => [e.phase, e.status])).toEqual([
      ['status', 'RUNNING'],
      ['input_answered', undefined],
    ]);
    expect(events.at(-1)!.input).toEqual({ inputId: input.id, action: 'accept', answeredBy: operator.userId });
    expect(JSON.stringify(events)).not.toContain('yes, once');

    const second = await answer(execution.id, { action: 'decline' }).expect(409);
    expect(second.body.error.code).toBe('no_pending_input');
  });

  it('a resumed run meets its question again and gets the answer; once delivered, the same question is a new one', async () => {
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    await answer(execution.id, { action: 'accept', content: { answer: 'go', approve: true } }).expect(200);
    const resumed = await ask(execution.id);
    expect(resumed).toMatchObject({
      state: 'answered',
      input: { id: input.id },
      answer: { action: 'accept', content: { answer: 'go', approve: true } },
    });
    expect(await markInputDelivered(em(), input.id)).toBe(true);
    expect(await markInputDelivered(em(), input.id)).toBe(false);
    // An approval asked again for the same command must not reuse the last answer.
    const next = await ask(execution.id);
    expect(next).toMatchObject({ state: 'pending', created: true });
    expect(next.state === 'pending' && next.input.id).not.toBe(input.id);
  });

  it.each([
    ['a missing required field', { answer: 'x' }, 'body.content.approve', /required/],
    ['a value of the wrong type', { answer: 'x', approve: 'yes' }, 'body.content.approve', /must be boolean/],
    ['a value outside the enum', { answer: 'x', approve: true, level: 'medium' }, 'body.content.level', /allowed values/],
    ['a value below its minimum', { answer: 'x', approve: true, count: 0 }, 'body.content.count', /must be >= 1/],
    [
      'a field the question does not ask for',
      { answer: 'x', approve: true, extra: 'y' },
      'body.content.extra',
      /does not ask for this field/,
    ],
  ])('accept with %s: 400 naming the field, the question stays pending', async (_what, content, path, message) => {
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    const res = await answer(execution.id, { action: 'accept', content }).expect(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual(
      expect.arrayContaining([expect.objectContaining({ path, message: expect.stringMatching(message) })]),
    );
    expect((await em().findOneOrFail(ExecutionInput, input.id)).status).toBe(ExecutionInputStatus.PENDING);
    expect(await statusOf(execution.id)).toBe(ExecutionStatus.WAITING_INPUT);
  });

  it('refuses malformed bodies with 400: an unknown action, a nested value, content on a decline', async () => {
    const execution = await runningExecution();
    await pendingOf(execution.id);
    const unknown = await answer(execution.id, { action: 'maybe' }).expect(400);
    expect(unknown.body.error.details[0].path).toBe('body.action');
    const nested = await answer(execution.id, { action: 'accept', content: { answer: { deep: true } } }).expect(400);
    expect(nested.body.error.details[0].path).toMatch(/^body\.content\.answer/);
    const declineWithContent = await answer(execution.id, { action: 'decline', content: { answer: 'x' } }).expect(400);
    expect(declineWithContent.body.error.details).toEqual([
      expect.objectContaining({ path: 'body.content', message: 'a decline carries no content' }),
    ]);
  });

  it.each(['decline', 'cancel'] as const)('%s: 200 without content, recorded as such', async (action) => {
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    await answer(execution.id, { action }).expect(200);
    expect(await em().findOneOrFail(ExecutionInput, input.id)).toMatchObject({
      status: ExecutionInputStatus.ANSWERED,
      action,
      content: null,
    });
    expect(await statusOf(execution.id)).toBe(ExecutionStatus.RUNNING);
  });

  it('a VIEWER may not answer (403), another organisation does not see the run (404), nothing pending is 409', async () => {
    const execution = await runningExecution();
    expect((await answer(execution.id, { action: 'decline' }).expect(409)).body.error.code).toBe('no_pending_input');
    const input = await pendingOf(execution.id);
    expect((await answer(execution.id, { action: 'decline' }, viewer).expect(403)).body.error.code).toBe('forbidden');
    expect((await answer(execution.id, { action: 'decline' }, stranger).expect(404)).body.error.code).toBe('not_found');
    expect((await em().findOneOrFail(ExecutionInput, input.id)).status).toBe(ExecutionInputStatus.PENDING);
  });

  it('two answers at once: exactly one wins', async () => {
    const execution = await runningExecution();
    await pendingOf(execution.id);
    const results = await Promise.all([
      answer(execution.id, { action: 'accept', content: { answer: 'a', approve: true } }),
      answer(execution.id, { action: 'decline' }, operator),
      answer(execution.id, { action: 'cancel' }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409]);
    expect(await em().count(AuditLog, { action: 'execution.input', resourceId: execution.id })).toBe(1);
  });

  it('expiry and an answer race on the row: only one of them wins', async () => {
    const expiring = await runningExecution();
    const input = await pendingOf(expiring.id);
    expect(await expireInput(em(), input.id)).toEqual({ expired: true });
    expect((await answer(expiring.id, { action: 'decline' }).expect(409)).body.error.code).toBe('no_pending_input');

    const answered = await runningExecution();
    const other = await pendingOf(answered.id);
    await answer(answered.id, { action: 'decline' }).expect(200);
    expect(await expireInput(em(), other.id)).toMatchObject({
      expired: false,
      input: { status: ExecutionInputStatus.ANSWERED, action: 'decline' },
    });
  });

  it('a waiting run keeps its slot (its agent WAITING_INPUT), and its end closes its question and frees the slot', async () => {
    const setup = em();
    const solo = makeAgent(setup, makeServer(setup, setup.getReference(Organization, admin.organizationId)));
    solo.status = AgentStatus.ACTIVE;
    await setup.flush();
    const execution = await runningExecution(solo.id);
    const input = await pendingOf(execution.id);
    expect((await em().findOneOrFail(Agent, solo.id)).status).toBe(AgentStatus.WAITING_INPUT);
    const tx = em();
    const queued = tx.create(Execution, {
      organization: tx.getReference(Organization, admin.organizationId),
      agent: tx.getReference(Agent, solo.id),
      trigger: ExecutionTrigger.API,
      prompt: 'next',
    });
    await tx.flush();
    // maxConcurrency 1, held by the waiting run: the queued one waits, and its agent still takes runs.
    expect(await acquireSlot(em(), queued.id)).toEqual({ started: false });
    expect(await finishExecution(em(), execution.id, { status: 'CANCELLED', error: 'cancelled by request' })).toEqual([queued.id]);
    expect((await em().findOneOrFail(ExecutionInput, input.id)).status).toBe(ExecutionInputStatus.CANCELLED);
    expect((await em().findOneOrFail(Agent, solo.id)).status).toBe(AgentStatus.ACTIVE);
    expect((await http.get(`/api/executions/${execution.id}`).set(as(admin)).expect(200)).body.pendingInput).toBeNull();
    expect(await acquireSlot(em(), queued.id)).toEqual({ started: true });
    expect((await em().findOneOrFail(Agent, solo.id)).status).toBe(AgentStatus.BUSY);
  });

  it('a run may set its own input timeout (POST /agents/:id/execute inputTimeoutMs), which its questions expire by; the answer signals its workflow', async () => {
    const setup = em();
    const own = makeAgent(setup, makeServer(setup, setup.getReference(Organization, admin.organizationId)));
    own.status = AgentStatus.ACTIVE;
    await setup.flush();
    const tooShort = await http
      .post(`/api/agents/${own.id}/execute`)
      .set(as(operator))
      .send({ prompt: 'x', inputTimeoutMs: 10 })
      .expect(400);
    expect(tooShort.body.error.details[0].path).toBe('body.inputTimeoutMs');
    // Beyond what the column holds (and 14 days).
    const tooLong = await http
      .post(`/api/agents/${own.id}/execute`)
      .set(as(operator))
      .send({ prompt: 'x', inputTimeoutMs: 2_589_065_398 })
      .expect(400);
    expect(tooLong.body.error.details[0]).toMatchObject({ path: 'body.inputTimeoutMs', message: 'at most 14 days' });
    const started = await http
      .post(`/api/agents/${own.id}/execute`)
      .set(as(operator))
      .send({ prompt: 'ask me', inputTimeoutMs: 5000 })
      .expect(202);
    // No worker polls this context's queue: the run keeps its slot and never reaches a host.
    closers.push(() => ctx.temporal.client.workflow.getHandle(started.body.workflowId).terminate('test over'));
    const executionId = started.body.executionId as string;
    expect((await http.get(`/api/executions/${executionId}`).set(as(viewer)).expect(200)).body).toMatchObject({
      status: 'RUNNING',
      inputTimeoutMs: 5000,
    });
    const before = Date.now();
    const input = await pendingOf(executionId);
    expect(input.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 5000 - 50);
    expect(input.expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 5000);

    // The answer wakes the run's workflow with the inputAnswered signal.
    await answer(executionId, { action: 'accept', content: { answer: 'ok', approve: true } }, operator).expect(200);
    const history = await ctx.temporal.client.workflow.getHandle(started.body.workflowId).fetchHistory();
    const signals = (history.events ?? []).flatMap((e) =>
      e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes] : [],
    );
    expect(signals.map((a) => a.signalName)).toEqual(['inputAnswered']);
  });

  it('the organisation room hears agent:input_required with the question (and no other organisation does)', async () => {
    const connect = async (account: Account): Promise<FleetClient> => {
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
      const ack = await new Promise<SubscribeAck>((resolve) => socket.emit('subscribe:org', {}, resolve));
      expect(ack).toEqual({ ok: true });
      return socket;
    };
    const mine = await connect(viewer);
    const theirs = await connect(stranger);
    const heard: InputRequiredPayload[] = [];
    const leaked: InputRequiredPayload[] = [];
    mine.on('agent:input_required', (p) => heard.push(p));
    theirs.on('agent:input_required', (p) => leaked.push(p));
    const execution = await runningExecution();
    const input = await pendingOf(execution.id);
    const payload = await waitFor(async () => heard.find((p) => p.executionId === execution.id));
    expect(payload).toEqual({
      executionId: execution.id,
      agentId,
      inputId: input.id,
      message: QUESTION.message,
      requestedSchema: QUESTION.requestedSchema,
      expiresAt: input.expiresAt.toISOString(),
      at: expect.any(String),
    });
    await answer(execution.id, { action: 'accept', content: { answer: 'secret answer', approve: true } }).expect(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(leaked).toEqual([]);
  });
});
