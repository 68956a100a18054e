import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';
import { PgListener } from '../lib/pg-listener';
import { drainWebhookOutbox } from '../domain/webhooks/deliveries';
import { WEBHOOK_OUTBOX_CHANNEL } from '../domain/webhooks/outbox';

/** How often a worker looks for delivery rows nobody started, and how old such a row must be. */
export const OUTBOX_INTERVAL_MS = 5_000;
export const OUTBOX_GRACE_MS = 30_000;

/**
 * Which rows a worker's outbox starts. Production: every row (one task queue, every worker alike).
 * Tests give each file a task queue of its own over one shared database: a worker there starts
 * only its own organisations' rows, so no delivery runs on another file's worker, which may stop first.
 */
export interface WebhookOutboxScope {
  organizations?: () => readonly string[];
}

/**
 * The worker's end of the webhook outbox. Rows written with an event (domain/events.ts) come
 * with a notice on WEBHOOK_OUTBOX_CHANNEL, sent on their commit: the worker starts their
 * workflows at once. At start, and after its LISTEN connection was lost, it starts every row
 * nobody started (events raised while no worker ran); every few seconds it starts rows older
 * than OUTBOX_GRACE_MS that are still unstarted (a writer that starts its own rows, like the
 * API's test message, stopped before it could). Several workers may drain together: a row's
 * workflow id lets only one start win.
 */
export async function runWebhookOutbox(
  deps: { orm: Orm; temporalClient: Client; config: Config; logger: Logger },
  databaseUrl: string,
  scope: WebhookOutboxScope = {},
): Promise<{ close(): Promise<void> }> {
  const temporal = { client: deps.temporalClient, taskQueue: deps.config.temporal.taskQueue };
  let running: Promise<unknown> = Promise.resolve();
  /** The grace of the drain queued behind the running one, if any: the smallest asked for. */
  let queued: number | undefined;
  // One drain at a time; what is asked meanwhile becomes one more drain after it.
  const drain = (graceMs: number) => {
    if (queued !== undefined) {
      queued = Math.min(queued, graceMs);
      return running;
    }
    queued = graceMs;
    running = running.then(async () => {
      const grace = queued ?? graceMs;
      queued = undefined;
      try {
        const started = await drainWebhookOutbox(deps.orm.em.fork(), temporal, deps.logger, grace, 100, scope.organizations?.());
        if (started) deps.logger.debug({ started }, 'webhook outbox: deliveries started');
      } catch (error) {
        deps.logger.warn({ err: error }, 'webhook outbox drain failed; the next notice or sweep tries again');
      }
    });
    return running;
  };
  const listener = new PgListener({
    databaseUrl,
    channels: [WEBHOOK_OUTBOX_CHANNEL],
    logger: deps.logger,
    name: 'webhook outbox',
    onNotification: () => void drain(0),
    onReconnect: () => void drain(0),
  });
  await listener.start();
  void drain(0);
  const timer = setInterval(() => void drain(OUTBOX_GRACE_MS), OUTBOX_INTERVAL_MS);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
      await listener.close();
      await running;
    },
  };
}
