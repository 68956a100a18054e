import type { EntityManager } from '@mikro-orm/postgresql';
import { Client } from 'pg';
import type { Logger } from './logger';

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

/** The executions this worker process is running, by id, with the means to abort them. */
export class RunningExecutions {
  private readonly controllers = new Map<string, AbortController>();

  register(executionId: string): AbortController {
    const controller = new AbortController();
    this.controllers.set(executionId, controller);
    return controller;
  }

  unregister(executionId: string, controller: AbortController): void {
    if (this.controllers.get(executionId) === controller) this.controllers.delete(executionId);
  }

  abort(executionId: string, reason: string): boolean {
    const controller = this.controllers.get(executionId);
    if (!controller) return false;
    controller.abort(new Error(reason));
    return true;
  }

  get size(): number {
    return this.controllers.size;
  }
}

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
