import type { EntityManager } from '@mikro-orm/postgresql';
import type { EventSubscriber, TransactionEventArgs } from '@mikro-orm/core';

/**
 * NOTIFYs sent inside a transaction, held until it commits and then sent in one statement, in
 * the order they were queued: PostgreSQL delivers a transaction's notifications at its commit
 * anyway, so listeners see no difference, and a transaction that announces several changes
 * (a run's row, its first events, its agent's status) makes one round trip for them instead of
 * one each. A transaction rolled back drops its queue, as PostgreSQL drops its notifications.
 * A savepoint's (a nested `transactional`) are sent at once, so they reach listeners before the
 * queued ones of the transaction around it; no code here nests two transactions that announce
 * the same run's events (the hub reads those by seq, domain/runs/execution-log.ts).
 */
const queues = new WeakMap<object, Array<[channel: string, payload: string]>>();

/**
 * Whether `transaction` is a savepoint in another (a nested `transactional`): MikroORM marks
 * those with its `parentTransaction` symbol and runs no commit hooks for them.
 */
function isNested(transaction: object): boolean {
  return Object.getOwnPropertySymbols(transaction).some((symbol) => symbol.description === 'parentTransaction');
}

/**
 * Queues the NOTIFY on `em`'s transaction; false when `em` is in none, or in a savepoint (whose
 * rollback must drop its notifications, as PostgreSQL does): the caller sends it now.
 */
export function queueNotify(em: EntityManager, channel: string, payload: string): boolean {
  const transaction = em.getTransactionContext<object>();
  if (!transaction || isNested(transaction)) return false;
  let queue = queues.get(transaction);
  if (!queue) queues.set(transaction, (queue = []));
  queue.push([channel, payload]);
  return true;
}

/** Registered on the ORM (lib/orm.ts): sends each transaction's queue just before it commits. */
export class NotifyOnCommit implements EventSubscriber {
  async beforeTransactionCommit({ em, transaction }: TransactionEventArgs): Promise<void> {
    const queue = transaction ? queues.get(transaction) : undefined;
    if (!queue?.length) return;
    queues.delete(transaction);
    // jsonb_array_elements yields the pairs in array order, and each row's NOTIFY is issued as it is read.
    await em
      .getConnection()
      .execute('select pg_notify(e->>0, e->>1) from jsonb_array_elements(?::jsonb) as e', [JSON.stringify(queue)], 'all', transaction);
  }

  afterTransactionRollback({ transaction }: TransactionEventArgs): void {
    if (transaction) queues.delete(transaction);
  }
}
