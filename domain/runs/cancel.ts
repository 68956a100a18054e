import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * Fast path for cancellation. The durable path is Temporal cancellation, which reaches a
 * running activity on its next heartbeat; this NOTIFY reaches every worker at once, and the one
 * running the execution aborts its MCP call immediately (the SDK then sends
 * notifications/cancelled to the host).
 */
export const CONTROL_CHANNEL = 'fleet_control';

export interface CancelCommand {
  type: 'cancel';
  executionId: string;
}

export async function publishCancel(em: EntityManager, executionId: string): Promise<void> {
  const command: CancelCommand = { type: 'cancel', executionId };
  await em.getConnection().execute('select pg_notify(?, ?)', [CONTROL_CHANNEL, JSON.stringify(command)]);
}
