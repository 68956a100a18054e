import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution } from '../../entities';

/**
 * The row locks of the run lifecycle, and the one order every transaction takes them in:
 *
 *   task → execution → its execution_inputs → its events → agent
 *
 * (`events` is the unique `(execution_id, seq)` entry an append takes.) A transaction that needs
 * several takes them in this order, so two never wait on each other in a cycle. The one
 * exception is a run being created: it is written after its agent's lock, but no other
 * transaction can know the new row yet.
 *
 * Rows are locked FOR NO KEY UPDATE, never FOR UPDATE. Both keep writers of the row in line, but
 * FOR UPDATE also blocks the foreign-key checks (KEY SHARE) of rows inserted pointing at it. The
 * worker appends a run's events outside any transaction: with its execution held FOR UPDATE, an
 * append that had taken seq N waited in its key check for the transaction holding the execution,
 * which then waited for the append's seq N: a deadlock (40P01), and one of the two events lost.
 * MikroORM 6 has no LockMode for FOR NO KEY UPDATE, hence the SQL here.
 */

/** The execution, locked until `tx` ends and read as it is now; null when it does not exist (in that organisation). */
export async function lockExecution(
  tx: EntityManager,
  where: { id: string; organization?: string },
  populate: readonly ('agent' | 'task')[] = [],
): Promise<Execution | null> {
  const rows = await tx.execute<{ id: string }[]>(
    `select id from executions where id = ?${where.organization ? ' and organization_id = ?' : ''} for no key update`,
    where.organization ? [where.id, where.organization] : [where.id],
  );
  if (!rows.length) return null;
  return tx.findOne(Execution, where.id, { populate, refresh: true });
}

/** The agent's row, locked until `tx` ends and read as it is now: whoever counts its slots holds it. */
export async function lockAgent(tx: EntityManager, agentId: string): Promise<Agent> {
  // Locked and read in one statement (the entity refreshed from the row).
  const [row] = await tx.execute<Record<string, unknown>[]>('select * from agents where id = ? for no key update', [agentId]);
  // None: findOneOrFail's error, as callers expect of a missing agent.
  return row ? tx.map(Agent, row) : tx.findOneOrFail(Agent, agentId);
}

/**
 * A run being recorded (start-execution.ts) has its workflow started while its row is still
 * uncommitted: the recording transaction holds this advisory lock, keyed by the run's id, from
 * before the start until it ends. The SQL expression of that key, for a statement's `?` (the id).
 */
export const RECORDING_LOCK_KEY = 'hashtextextended(?, 0)';

/**
 * For a run's workflow whose row is not there: waits until the transaction recording it (if any)
 * has committed or rolled back. Read the row again afterwards: still missing, it never will be.
 */
export async function awaitRecording(em: EntityManager, executionId: string): Promise<void> {
  await em
    .fork()
    .transactional((tx) => tx.execute(`select pg_advisory_xact_lock_shared(${RECORDING_LOCK_KEY})::text as waited`, [executionId]));
}
