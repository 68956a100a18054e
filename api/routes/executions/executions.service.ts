import { PassThrough } from 'node:stream';
import type { EntityManager } from '@mikro-orm/postgresql';
import { LockMode } from '@mikro-orm/core';
import { Agent, AgentStatus, Execution, ExecutionStatus, ExecutionTrigger, FINAL_EXECUTION_STATUSES, User } from '../../../entities';
import { setAgentStatus } from '../../../domain/runs/agent-status';
import { executionNotice, insertExecutionEvent } from '../../../domain/runs/execution-log';
import { publishEvent } from '../../../domain/events';
import type { AgentExecutionPayload } from '../../../domain/realtime-types';
import { queryProgress, startAgentExecution } from '../../../domain/temporal';
import { executionWorkflowId, type ProgressSnapshot } from '../../../workflows/agent-execution.workflow';
import { auditByCaller } from '../../actor';
import { watchSession } from '../../realtime/session-watch';
import type { AppContext } from '../../context';
import type { AppDeps } from '../../deps';
import { AppError } from '../../../domain/errors';

const RUNNABLE: readonly AgentStatus[] = [AgentStatus.ACTIVE, AgentStatus.BUSY];

export interface StartInput {
  agent: Agent;
  prompt: string;
  context?: Record<string, unknown>;
  trigger: ExecutionTrigger;
  taskId?: string;
}

/**
 * Creates the Execution (QUEUED, first event in its log) and starts `agentExecution`
 * (workflow id `execution-<id>`). If Temporal refuses the start, the row is marked FAILED
 * rather than left QUEUED forever.
 */
export async function startExecution(ctx: AppContext, deps: AppDeps, input: StartInput): Promise<Execution> {
  const auth = ctx.state.auth!;
  const em = deps.orm.em as EntityManager;
  const ref = { organizationId: auth.organizationId, agentId: input.agent.id, taskId: input.taskId };
  // Row, audit entry and first events commit together; the notices go out after. When the
  // agent has a free slot (nobody queued ahead), the run takes it here, sparing the workflow a
  // step; otherwise it stays QUEUED and the workflow waits for a slot.
  const { execution, events, busy } = await em.transactional(async (tx) => {
    const agent = await tx.findOneOrFail(Agent, input.agent.id, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!RUNNABLE.includes(agent.status)) {
      throw AppError.conflict('agent_not_active', `The agent is ${agent.status}; only ACTIVE agents execute${agent.status === AgentStatus.PENDING_VALIDATION ? ' (validate it first)' : ''}`);
    }
    const taken = await tx.count(Execution, { agent, status: { $in: [ExecutionStatus.RUNNING, ExecutionStatus.QUEUED] } });
    const startNow = taken < agent.maxConcurrency;
    const created = tx.create(Execution, {
      organization: agent.organization,
      agent,
      trigger: input.trigger,
      triggeredBy: tx.getReference(User, auth.userId),
      prompt: input.prompt,
      context: input.context,
      status: startNow ? ExecutionStatus.RUNNING : ExecutionStatus.QUEUED,
      startedAt: startNow ? new Date() : undefined,
    });
    created.workflowId = executionWorkflowId(created.id);
    const previous = agent.status;
    if (startNow) agent.status = AgentStatus.BUSY;
    auditByCaller(ctx, tx, { action: 'agent.execute', resourceType: 'execution', resourceId: created.id, changes: { agentId: agent.id, trigger: input.trigger } });
    await tx.flush();
    const written = [await insertExecutionEvent(tx, { id: created.id, ...ref }, 1, 'status', { status: ExecutionStatus.QUEUED })];
    if (startNow) written.push(await insertExecutionEvent(tx, { id: created.id, ...ref }, 1, 'status', { status: ExecutionStatus.RUNNING }));
    return { execution: created, events: written, busy: startNow && previous !== AgentStatus.BUSY ? previous : undefined };
  });
  // Announced before the workflow starts, so no later notice of this run can overtake them.
  for (const event of events) await publishEvent(em, executionNotice({ id: execution.id, ...ref }, event));
  if (busy) await publishEvent(em, { type: 'agent:status', organizationId: ref.organizationId, agentId: ref.agentId, status: AgentStatus.BUSY, previousStatus: busy, reason: 'executing', at: new Date().toISOString() });
  try {
    await startAgentExecution(deps.temporal, {
      executionId: execution.id,
      organizationId: auth.organizationId,
      agentId: input.agent.id,
      serverId: input.agent.server.id,
      taskId: input.taskId,
      slotTaken: execution.status === ExecutionStatus.RUNNING,
    });
  } catch (error) {
    deps.logger.error({ err: error, executionId: execution.id }, 'could not start agentExecution');
    // Nothing will run it: end it as FAILED and give its slot back.
    const reason = 'the run could not be started (Temporal unavailable)';
    await em.fork().nativeUpdate(Execution, { id: execution.id }, { status: ExecutionStatus.FAILED, error: reason, completedAt: new Date() });
    const fork = em.fork() as EntityManager;
    const failed = await insertExecutionEvent(fork, { id: execution.id, ...ref }, 1, 'status', { status: ExecutionStatus.FAILED, data: { error: reason } });
    await publishEvent(fork, executionNotice({ id: execution.id, ...ref }, failed));
    const running = await em.fork().count(Execution, { agent: input.agent.id, status: ExecutionStatus.RUNNING });
    if (running === 0) await setAgentStatus(em.fork() as EntityManager, input.agent.id, AgentStatus.ACTIVE, 'idle', [AgentStatus.BUSY]);
    throw new AppError(503, 'temporal_unavailable', 'The run could not be started; try again', { executionId: execution.id });
  }
  return execution;
}

/** The workflow's `progress` query, or what the database knows when the workflow cannot answer. */
export async function readProgress(deps: AppDeps, execution: Execution): Promise<ProgressSnapshot> {
  if (!FINAL_EXECUTION_STATUSES.includes(execution.status) && execution.workflowId) {
    try {
      return await queryProgress(deps.temporal, execution.id);
    } catch {
      // fall through to the stored state
    }
  }
  const [row] = await deps.orm.em.getConnection().execute<{ seq: number | null }[]>('select max(seq) as seq from execution_events where execution_id = ?', [execution.id]);
  return { status: execution.status, todos: execution.todos ?? [], outputTail: (execution.output ?? '').slice(-2000), seq: Number(row?.seq ?? 0) };
}

export async function eventsAfter(deps: AppDeps, executionId: string, after: number, limit = 1000): Promise<AgentExecutionPayload[]> {
  const rows = await deps.orm.em
    .getConnection()
    .execute<{ payload: AgentExecutionPayload }[]>('select payload from execution_events where execution_id = ? and seq > ? order by seq limit ?', [executionId, after, limit]);
  return rows.map((r) => r.payload);
}

function isFinalEvent(payload: AgentExecutionPayload): boolean {
  return payload.phase === 'status' && FINAL_EXECUTION_STATUSES.includes(payload.status as ExecutionStatus);
}

const HEARTBEAT_MS = 15_000;

/**
 * Streams an execution's events as SSE (`id:` = seq, `event:` = phase), from `after` on: first
 * the log, then live events from this instance's hub, without gaps or duplicates; ends after
 * the final status. A reconnecting client sends Last-Event-ID and resumes where it stopped.
 */
export async function streamExecution(ctx: AppContext, deps: AppDeps, executionId: string, after: number): Promise<void> {
  const stream = new PassThrough();
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.status = 200;
  ctx.set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  ctx.body = stream;

  let last = after;
  let done = false;
  let backlogDone = false;
  const pending: AgentExecutionPayload[] = [];
  const write = (payload: AgentExecutionPayload) => {
    if (done || payload.seq <= last) return;
    if (payload.seq !== last + 1 && backlogDone) {
      // A gap (an event arrived before its predecessor was delivered here): fill it from the log.
      pending.push(payload);
      void fill();
      return;
    }
    last = payload.seq;
    stream.write(`id: ${payload.seq}\nevent: ${payload.phase}\ndata: ${JSON.stringify(payload)}\n\n`);
    if (isFinalEvent(payload)) finish();
  };
  let filling = false;
  const fill = async () => {
    if (filling) return;
    filling = true;
    try {
      for (const p of await eventsAfter(deps, executionId, last)) write(p);
      pending.sort((a, b) => a.seq - b.seq).splice(0).forEach(write);
    } finally {
      filling = false;
    }
  };
  const unsubscribe = deps.events.subscribe((event) => {
    if (event.type !== 'execution:event' || event.executionId !== executionId) return;
    if (!backlogDone) pending.push(event.payload);
    else write(event.payload);
  });
  const heartbeat = setInterval(() => stream.write(': keep-alive\n\n'), HEARTBEAT_MS);
  let stopWatching = () => undefined as unknown;
  const finish = () => {
    if (done) return;
    done = true;
    clearInterval(heartbeat);
    unsubscribe();
    stopWatching();
    stream.end();
  };
  ctx.req.on('close', finish);
  stream.write(': mcp-fleet execution events\n\n');
  // The stream lives only as long as the caller's session (logout, user deleted, role changed, token expired).
  stopWatching = watchSession(deps, ctx.state.auth!, (reason) => {
    if (!done) stream.write(`event: session_ended\ndata: ${JSON.stringify({ reason })}\n\n`);
    finish();
  });
  for (;;) {
    const page = await eventsAfter(deps, executionId, last);
    page.forEach(write);
    if (page.length < 1000 || done) break;
  }
  backlogDone = true;
  pending.sort((a, b) => a.seq - b.seq).splice(0).forEach(write);
  // Resumed after the end (Last-Event-ID at or past the final event): nothing more will come.
  if (!done) {
    const execution = await deps.orm.em.fork().findOne(Execution, executionId, { fields: ['status'] });
    if (!execution || FINAL_EXECUTION_STATUSES.includes(execution.status)) {
      for (const p of await eventsAfter(deps, executionId, last)) write(p);
      finish();
    }
  }
}

export function wantsEventStream(ctx: AppContext): boolean {
  return (ctx.get('accept') || '').includes('text/event-stream');
}
