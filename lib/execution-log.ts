import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { publishEvent } from './events';
import type { Orm } from './orm';
import type { AgentExecutionPayload, ExecutionPhase } from './realtime-types';

export interface ExecutionRef {
  id: string;
  organizationId: string;
  agentId: string;
  taskId?: string;
}

export type EventFields = Omit<AgentExecutionPayload, 'agentId' | 'executionId' | 'taskId' | 'seq' | 'attempt' | 'phase' | 'at'>;

/**
 * Appends to an execution's event log: one row per event with a gapless `seq`, then one NOTIFY.
 * Appends of one log are chained, so they keep their order; a concurrent writer (the API, a
 * zombie attempt) can only cost a retry, never a gap or a duplicate.
 */
export class ExecutionLog {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly orm: Orm,
    readonly execution: ExecutionRef,
    readonly attempt: number,
  ) {}

  append(phase: ExecutionPhase, fields: EventFields = {}): Promise<AgentExecutionPayload> {
    const next = this.chain.then(() => this.write(phase, fields));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Resolves when every append so far is written. */
  flush(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  private async write(phase: ExecutionPhase, fields: EventFields): Promise<AgentExecutionPayload> {
    const em = this.orm.em.fork() as EntityManager;
    const connection = em.getConnection();
    for (let tries = 0; ; tries++) {
      const at = new Date();
      const base = { agentId: this.execution.agentId, executionId: this.execution.id, ...(this.execution.taskId ? { taskId: this.execution.taskId } : {}) };
      const draft = { ...base, seq: 0, attempt: this.attempt, phase, ...fields, at: at.toISOString() };
      try {
        const rows = await connection.execute<{ seq: number }[]>(
          `with next as (select coalesce(max(seq), 0) + 1 as seq from execution_events where execution_id = ?)
           insert into execution_events (id, execution_id, organization_id, seq, type, attempt, payload, created_at)
           select ?, ?, ?, next.seq, ?, ?, jsonb_set(?::jsonb, '{seq}', to_jsonb(next.seq)), ? from next
           returning seq`,
          [this.execution.id, randomUUID(), this.execution.id, this.execution.organizationId, phase, this.attempt, JSON.stringify(draft), at],
        );
        const payload: AgentExecutionPayload = { ...draft, seq: rows[0]!.seq };
        await publishEvent(em, { type: 'execution:event', organizationId: this.execution.organizationId, agentId: this.execution.agentId, executionId: this.execution.id, seq: payload.seq, payload });
        return payload;
      } catch (error) {
        const unique = (error as { code?: string }).code === '23505' || /unique/i.test((error as Error).message);
        if (!unique || tries >= 10) throw error;
      }
    }
  }
}
