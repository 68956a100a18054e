import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { FINAL_EXECUTION_STATUSES } from '../../entities';
import { publishEventOnCommit, type AgentExecutionPayload, type ExecutionPhase } from '../events';
import { DATABASE_OUTAGE_GRACE_MS, retryWhileDatabaseUnavailable } from '../../lib/database-unavailable';
import type { Orm } from '../../lib/orm';

/**
 * The event log of executions: the only module that reads or writes `execution_events`.
 */

export interface ExecutionRef {
  id: string;
  organizationId: string;
  agentId: string;
  taskId?: string;
  /** A delegated run's parent: its `status` events name it (webhooks tell a child's failure from its parent's). */
  parentExecutionId?: string;
}

export type EventFields = Omit<
  AgentExecutionPayload,
  'agentId' | 'executionId' | 'taskId' | 'parentExecutionId' | 'seq' | 'attempt' | 'phase' | 'at'
>;

/**
 * Appends to an execution's event log: one row per event with a gapless `seq`, then one NOTIFY.
 * Appends of one log are chained, so they keep their order; a concurrent writer (the API, a
 * zombie attempt) can only cost a retry, never a gap or a duplicate. An append that fails even
 * so rejects, and so does every later `flush()`: the caller fails rather than go on with a log
 * that lacks the event.
 */
export class ExecutionLog {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly orm: Orm,
    readonly execution: ExecutionRef,
    readonly attempt: number,
    /** How long each write waits for an unavailable PostgreSQL (the worker's DATABASE_OUTAGE_GRACE_MS). */
    readonly graceMs = DATABASE_OUTAGE_GRACE_MS,
  ) {}

  append(phase: ExecutionPhase, fields: EventFields = {}): Promise<AgentExecutionPayload> {
    const next = this.chain.then(() => appendEvent(this.orm.em.fork(), this.execution, this.attempt, phase, fields, this.graceMs));
    this.chain = next.catch((error: unknown) => {
      this.failure ??= error;
    });
    return next;
  }

  /** Resolves when every append so far is written; rejects with the first append that failed. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }
}

export function executionNotice(execution: ExecutionRef, payload: AgentExecutionPayload) {
  return {
    type: 'execution:event' as const,
    organizationId: execution.organizationId,
    agentId: execution.agentId,
    executionId: execution.id,
    seq: payload.seq,
    payload,
  };
}

/** A unique key taken (a seq only in a statement without `on conflict`): the append takes the next seq. */
const SEQ_TAKEN = '23505';
/** PostgreSQL ended the statement to break a deadlock, or for a serialization failure: trying it again is the cure. */
const TRANSIENT = new Set(['40P01', '40001']);
const MAX_TRIES = 10;

function sqlState(error: unknown): string | undefined {
  return (error as { code?: unknown }).code as string | undefined;
}

/**
 * Writes one event and announces it; any writer may append to the same log at the same time.
 *
 * Inside a transaction, event and NOTIFY commit with the change the event describes (PostgreSQL
 * delivers the NOTIFY at commit), so no listener hears of it early. A seq taken meanwhile by a
 * writer that committed first (the worker appends outside any transaction) is taken again, and
 * the caller's transaction goes on (insertInTransaction).
 *
 * Outside a transaction the insert is tried again when the seq was taken, and after a short
 * pause when PostgreSQL broke a deadlock or a serialization conflict with it; while PostgreSQL
 * is unavailable, it waits for its return (DATABASE_OUTAGE_GRACE_MS, lib/database-unavailable.ts),
 * so a run outlives a database restart with its log whole.
 */
export async function appendEvent(
  em: EntityManager,
  execution: ExecutionRef,
  attempt: number,
  phase: ExecutionPhase,
  fields: EventFields = {},
  graceMs = DATABASE_OUTAGE_GRACE_MS,
): Promise<AgentExecutionPayload> {
  const event = draftEvent(execution, attempt, phase, fields);
  const insert = () => insertExecutionEvent(em, execution, event);
  if (em.isInTransaction()) {
    const payload = await insertInTransaction(insert);
    await publishEventOnCommit(em, executionNotice(execution, payload));
    return payload;
  }
  // Outside a transaction nobody else would retry: while PostgreSQL is unavailable the insert
  // waits for it (the event keeps its id, so a try whose answer was lost after the commit is not
  // written twice), and so does the notice (a second one is dropped by every hub, by its seq).
  const payload = await retryWhileDatabaseUnavailable(() => insertRetrying(insert), graceMs);
  await retryWhileDatabaseUnavailable(() => publishEventOnCommit(em, executionNotice(execution, payload)), graceMs);
  return payload;
}

/**
 * A seq taken by a writer that committed first is no error inside the caller's transaction (the
 * insert does nothing, then takes the next seq), so the transaction goes on without a savepoint
 * around each append. A deadlock is not tried again: the caller still holds what the other side
 * waits for (row-locks.ts keeps that from happening).
 */
async function insertInTransaction(insert: () => Promise<AgentExecutionPayload | undefined>): Promise<AgentExecutionPayload> {
  for (let tries = 1; ; tries++) {
    const payload = await insert();
    if (payload) return payload;
    if (tries >= MAX_TRIES) throw new Error(`execution event: the next seq was taken ${MAX_TRIES} times in a row`);
  }
}

async function insertRetrying(insert: () => Promise<AgentExecutionPayload | undefined>): Promise<AgentExecutionPayload> {
  for (let tries = 1; ; tries++) {
    try {
      const payload = await insert();
      if (payload) return payload;
      if (tries >= MAX_TRIES) throw new Error(`execution event: the next seq was taken ${MAX_TRIES} times in a row`);
    } catch (error) {
      const state = sqlState(error);
      if (tries >= MAX_TRIES || (state !== SEQ_TAKEN && !TRANSIENT.has(state ?? ''))) throw error;
      if (state !== SEQ_TAKEN) await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** Math.min(tries, 6) * Math.random()));
    }
  }
}

/** One event before its seq is known: its row id and time are fixed once, whatever the tries. */
interface DraftEvent {
  id: string;
  at: Date;
  payload: AgentExecutionPayload;
}

function draftEvent(execution: ExecutionRef, attempt: number, phase: ExecutionPhase, fields: EventFields): DraftEvent {
  const at = new Date();
  const payload: AgentExecutionPayload = {
    agentId: execution.agentId,
    executionId: execution.id,
    ...(execution.taskId ? { taskId: execution.taskId } : {}),
    ...(phase === 'status' && execution.parentExecutionId ? { parentExecutionId: execution.parentExecutionId } : {}),
    seq: 0,
    attempt,
    phase,
    ...fields,
    at: at.toISOString(),
  };
  return { id: randomUUID(), at, payload };
}

/**
 * Inserts one event with the next seq of its execution, computed in the same statement. An event
 * already there (its id: a try that committed, whose answer the connection lost) keeps its seq;
 * undefined when the seq was taken meanwhile by another writer (nothing written: try again).
 */
async function insertExecutionEvent(
  em: EntityManager,
  execution: ExecutionRef,
  event: DraftEvent,
): Promise<AgentExecutionPayload | undefined> {
  const { id, at, payload } = event;
  // `on conflict do nothing` covers both unique keys, the id and (execution, seq): a conflict
  // inserts nothing instead of failing the statement (and with it a caller's transaction).
  const rows = await em.execute<{ seq: number }[]>(
    `with next as (select coalesce(max(seq), 0) + 1 as seq from execution_events where execution_id = ?)
     insert into execution_events (id, execution_id, organization_id, seq, type, attempt, payload, created_at)
     select ?, ?, ?, next.seq, ?, ?, jsonb_set(?::jsonb, '{seq}', to_jsonb(next.seq)), ? from next
     on conflict do nothing
     returning seq`,
    [execution.id, id, execution.id, execution.organizationId, payload.phase, payload.attempt, JSON.stringify(payload), at],
  );
  const seq = rows[0]?.seq ?? (await em.execute<{ seq: number }[]>('select seq from execution_events where id = ?', [id]))[0]?.seq;
  return seq === undefined ? undefined : { ...payload, seq };
}

/** The log of one execution after `after`, in seq order (SSE, the events route, catch-up). */
export async function eventsAfter(em: EntityManager, executionId: string, after: number, limit = 1000): Promise<AgentExecutionPayload[]> {
  const rows = await em.execute<{ payload: AgentExecutionPayload }[]>(
    'select payload from execution_events where execution_id = ? and seq > ? order by seq limit ?',
    [executionId, after, limit],
  );
  return rows.map((r) => r.payload);
}

/** The seq of the execution's final status event (the end of its log), or undefined while it has none. */
export async function finalEventSeq(em: EntityManager, executionId: string): Promise<number | undefined> {
  const finals = FINAL_EXECUTION_STATUSES.map(() => '?').join(', ');
  const rows = await em.execute<{ seq: number }[]>(
    `select seq from execution_events where execution_id = ? and type = 'status' and payload->>'status' in (${finals}) order by seq limit 1`,
    [executionId, ...FINAL_EXECUTION_STATUSES],
  );
  return rows[0]?.seq;
}

/** One event of an execution (a notice too large for NOTIFY carries only its ids). */
export async function eventAt(em: EntityManager, executionId: string, seq: number): Promise<AgentExecutionPayload | undefined> {
  const rows = await em.execute<{ payload: AgentExecutionPayload }[]>(
    'select payload from execution_events where execution_id = ? and seq = ?',
    [executionId, seq],
  );
  return rows[0]?.payload;
}

/** Events of every execution written since `since`, oldest first (a listener's catch-up after a lost connection). */
export async function eventsSince(
  em: EntityManager,
  since: Date,
  limit = 10_000,
): Promise<{ payload: AgentExecutionPayload; organizationId: string }[]> {
  const rows = await em.execute<{ payload: AgentExecutionPayload; organization_id: string }[]>(
    'select payload, organization_id from execution_events where created_at >= ? order by created_at, seq limit ?',
    [since, limit],
  );
  return rows.map((r) => ({ payload: r.payload, organizationId: r.organization_id }));
}

/** The seq of the execution's last event (0 when it has none). */
export async function lastSeq(em: EntityManager, executionId: string): Promise<number> {
  const [row] = await em.execute<{ seq: number | null }[]>('select max(seq) as seq from execution_events where execution_id = ?', [
    executionId,
  ]);
  return Number(row?.seq ?? 0);
}

/** The output the log holds so far, in order: a run that re-attaches to its task continues it instead of starting over. */
export async function outputSoFar(em: EntityManager, executionId: string): Promise<string> {
  const [row] = await em.execute<{ output: string | null }[]>(
    "select string_agg(payload->>'output', '' order by seq) as output from execution_events where execution_id = ? and type = 'output'",
    [executionId],
  );
  return row?.output ?? '';
}
