import { PassThrough } from 'node:stream';
import { Execution, ExecutionStatus, FINAL_EXECUTION_STATUSES } from '../../entities';
import { eventsAfter } from '../../domain/runs/execution-log';
import type { AgentExecutionPayload } from '../../domain/realtime-types';
import type { AppContext } from '../context';
import type { AppDeps } from '../deps';
import { watchSession } from './session-watch';

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
      for (const p of await eventsAfter(deps.orm.em, executionId, last)) write(p);
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
    const page = await eventsAfter(deps.orm.em, executionId, last);
    page.forEach(write);
    if (page.length < 1000 || done) break;
  }
  backlogDone = true;
  pending.sort((a, b) => a.seq - b.seq).splice(0).forEach(write);
  // Resumed after the end (Last-Event-ID at or past the final event): nothing more will come.
  if (!done) {
    const execution = await deps.orm.em.fork().findOne(Execution, executionId, { fields: ['status'] });
    if (!execution || FINAL_EXECUTION_STATUSES.includes(execution.status)) {
      for (const p of await eventsAfter(deps.orm.em, executionId, last)) write(p);
      finish();
    }
  }
}

export function wantsEventStream(ctx: AppContext): boolean {
  return (ctx.get('accept') || '').includes('text/event-stream');
}
