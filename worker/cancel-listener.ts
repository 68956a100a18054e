import { Client } from 'pg';
import type { Logger } from '../lib/logger';
import type { RunningExecutions } from '../activities/running-executions';
import { CONTROL_CHANNEL, type CancelCommand } from '../domain/runs/cancel';

/** One LISTEN connection per worker process, reconnecting with backoff. */
export function listenForControl(databaseUrl: string, running: RunningExecutions, logger: Logger): { close(): Promise<void> } {
  let client: Client | undefined;
  let closed = false;
  let retryMs = 250;
  let timer: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (closed) return;
    const next = new Client({ connectionString: databaseUrl });
    next.on('notification', (message) => {
      if (message.channel !== CONTROL_CHANNEL || !message.payload) return;
      try {
        const command = JSON.parse(message.payload) as CancelCommand;
        if (command.type === 'cancel' && running.abort(command.executionId, 'cancelled by request')) {
          logger.info({ executionId: command.executionId }, 'execution aborted by cancel request');
        }
      } catch (error) {
        logger.warn({ err: error }, 'unreadable control message');
      }
    });
    next.on('error', (error) => {
      logger.warn({ err: error }, 'control channel connection lost; reconnecting');
      void next.end().catch(() => undefined);
      schedule();
    });
    try {
      await next.connect();
      await next.query(`listen ${CONTROL_CHANNEL}`);
      client = next;
      retryMs = 250;
    } catch (error) {
      logger.warn({ err: error }, 'control channel unavailable; retrying');
      await next.end().catch(() => undefined);
      schedule();
    }
  };
  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 10_000);
  };
  void connect();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
