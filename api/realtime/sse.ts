import { PassThrough } from 'node:stream';
import { Execution, ExecutionStatus, FINAL_EXECUTION_STATUSES } from '../../entities';
import { eventsAfter, finalEventSeq } from '../../domain/runs/execution-log';
import type { AgentExecutionPayload } from '../../domain/events';
import type { AppContext } from '../context';
import type { AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';
import { watchSession } from './session-watch';

function isFinalEvent(payload: AgentExecutionPayload): boolean {
  return payload.phase === 'status' && FINAL_EXECUTION_STATUSES.includes(payload.status as ExecutionStatus);
}

const HEARTBEAT_MS = 15_000;

/** An open SSE response. */
export interface EventStream {
  /** Writes one event; nothing once the stream has ended. */
  send(event: string, data: unknown, id?: string | number): void;
  /** Ends the stream (idempotent); `onEnd` runs once. */
  end(): void;
  readonly ended: boolean;
}

/**
 * Answers the request with an SSE stream: the headers, a comment naming it, keep-alive
 * comments, and an end when the client goes away or the caller's session ends (logout, user
 * deleted, role changed, token expired: announced as a `session_ended` event first). `onEnd`
 * runs once, however the stream ends, to let go of what feeds it.
 */
export function openEventStream(ctx: AppContext, deps: AppDeps, auth: AuthContext, name: string, onEnd: () => void): EventStream {
  const stream = new PassThrough();
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.status = 200;
  ctx.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  ctx.body = stream;

  let ended = false;
  deps.metrics.realtimeConnections.inc({ kind: 'sse' });
  const heartbeat = setInterval(() => stream.write(': keep-alive\n\n'), HEARTBEAT_MS);
  let stopWatching = () => undefined as unknown;
  const end = () => {
    if (ended) return;
    ended = true;
    deps.metrics.realtimeConnections.dec({ kind: 'sse' });
    clearInterval(heartbeat);
    stopWatching();
    onEnd();
    stream.end();
  };
  const send = (event: string, data: unknown, id?: string | number) => {
    if (ended) return;
    stream.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  ctx.req.on('close', end);
  stream.write(`: ${name}\n\n`);
  stopWatching = watchSession(deps, auth, (reason) => {
    send('session_ended', { reason });
    end();
  });
  return {
    send,
    end,
    get ended() {
      return ended;
    },
  };
}

/**
 * Streams an execution's events as SSE (`id:` = seq, `event:` = phase), from `after` on: first
 * the log, then live events from this instance's hub, without gaps or duplicates; ends after
 * the final status. A reconnecting client sends Last-Event-ID and resumes where it stopped.
 *
 * A client resuming at or past the final status event gets 204 No Content: an EventSource
 * reconnects by itself whenever a stream closes, and a 204 is what makes it stop; a stream
 * kept open with keep-alives instead would hold a connection per finished run forever.
 */
export async function streamExecution(
  ctx: AppContext,
  deps: AppDeps,
  auth: AuthContext,
  executionId: string,
  after: number,
): Promise<void> {
  const end = await finalEventSeq(deps.orm.em, executionId);
  if (end !== undefined && end <= after) {
    ctx.status = 204;
    return;
  }
  let last = after;
  let backlogDone = false;
  const pending: AgentExecutionPayload[] = [];
  let unsubscribe = () => undefined as unknown;
  const out = openEventStream(ctx, deps, auth, 'mcp-fleet execution events', () => unsubscribe());
  const write = (payload: AgentExecutionPayload) => {
    if (out.ended || payload.seq <= last) return;
    if (payload.seq !== last + 1 && backlogDone) {
      // A gap (an event arrived before its predecessor was delivered here): fill it from the log.
      pending.push(payload);
      void fill();
      return;
    }
    last = payload.seq;
    out.send(payload.phase, payload, payload.seq);
    if (isFinalEvent(payload)) out.end();
  };
  let filling = false;
  const fill = async () => {
    if (filling) return;
    filling = true;
    try {
      for (const p of await eventsAfter(deps.orm.em, executionId, last)) write(p);
      pending
        .sort((a, b) => a.seq - b.seq)
        .splice(0)
        .forEach(write);
    } catch (error) {
      // The log could not be read (the database away): the stream ends rather than skip the gap,
      // and the client resumes with Last-Event-ID, which fills it from the log.
      deps.logger.warn({ err: error, executionId }, 'SSE could not fill a gap from the log; ending the stream');
      out.end();
    } finally {
      filling = false;
    }
  };
  unsubscribe = deps.events.subscribe((event) => {
    if (event.type !== 'execution:event' || event.executionId !== executionId) return;
    if (!backlogDone) pending.push(event.payload);
    else write(event.payload);
  });
  // The session may have ended already, before there was anything to let go of.
  if (out.ended) unsubscribe();
  for (;;) {
    const page = await eventsAfter(deps.orm.em, executionId, last);
    page.forEach(write);
    if (page.length < 1000 || out.ended) break;
  }
  backlogDone = true;
  pending
    .sort((a, b) => a.seq - b.seq)
    .splice(0)
    .forEach(write);
  // Resumed after the end (Last-Event-ID at or past the final event): nothing more will come.
  if (!out.ended) {
    const execution = await deps.orm.em.fork().findOne(Execution, executionId, { fields: ['status'] });
    if (!execution || FINAL_EXECUTION_STATUSES.includes(execution.status)) {
      for (const p of await eventsAfter(deps.orm.em, executionId, last)) write(p);
      out.end();
    }
  }
}

export function wantsEventStream(ctx: AppContext): boolean {
  return (ctx.get('accept') || '').includes('text/event-stream');
}
