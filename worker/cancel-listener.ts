import type { Logger } from '../lib/logger';
import { PgListener } from '../lib/pg-listener';
import type { RunningExecutions } from '../activities/running-executions';
import { CONTROL_CHANNEL, type CancelCommand } from '../domain/runs/control-channel';
import type { InputCommand } from '../domain/runs/inputs';

/**
 * The worker's end of the cancel fast path: one LISTEN connection on `fleet_control`; a cancel
 * aborts the execution if this process runs it; an answered question wakes the plain call
 * holding it (which also re-reads its row every 2 s, so a missed notice only delays it). A cancel missed while the connection was down
 * needs no catch-up: Temporal's cancellation reaches the activity on its next heartbeat.
 * Resolves once listening.
 */
export async function listenForControl(
  databaseUrl: string,
  running: RunningExecutions,
  logger: Logger,
): Promise<{ close(): Promise<void> }> {
  const listener = new PgListener({
    databaseUrl,
    channels: [CONTROL_CHANNEL],
    logger,
    name: 'control channel',
    onNotification: (_channel, payload) => {
      try {
        const command = JSON.parse(payload) as CancelCommand | InputCommand;
        if (command.type === 'cancel' && running.abort(command.executionId, 'cancelled by request')) {
          logger.info({ executionId: command.executionId }, 'execution aborted by cancel request');
        }
        // A plain call's question held by this process: its answer is in the database now.
        if (command.type === 'input') running.inputAnswered(command.executionId);
      } catch (error) {
        logger.warn({ err: error }, 'unreadable control message');
      }
    },
  });
  await listener.start();
  return listener;
}
