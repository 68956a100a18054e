import type { Logger } from '../lib/logger';
import { PgListener } from '../lib/pg-listener';
import type { RunningExecutions } from '../activities/running-executions';
import { CONTROL_CHANNEL, type CancelCommand } from '../domain/runs/cancel';

/**
 * The worker's end of the cancel fast path: one LISTEN connection on `fleet_control`; a cancel
 * aborts the execution if this process runs it. A cancel missed while the connection was down
 * needs no catch-up: Temporal's cancellation reaches the activity on its next heartbeat.
 * Resolves once listening.
 */
export async function listenForControl(databaseUrl: string, running: RunningExecutions, logger: Logger): Promise<{ close(): Promise<void> }> {
  const listener = new PgListener({
    databaseUrl,
    channels: [CONTROL_CHANNEL],
    logger,
    name: 'control channel',
    onNotification: (_channel, payload) => {
      try {
        const command = JSON.parse(payload) as CancelCommand;
        if (command.type === 'cancel' && running.abort(command.executionId, 'cancelled by request')) {
          logger.info({ executionId: command.executionId }, 'execution aborted by cancel request');
        }
      } catch (error) {
        logger.warn({ err: error }, 'unreadable control message');
      }
    },
  });
  await listener.start();
  return listener;
}
