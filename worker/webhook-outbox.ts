import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';
import { drainWebhookOutbox } from '../domain/webhooks/deliveries';

/** How often a worker looks for delivery rows nobody started, and how old such a row must be. */
export const OUTBOX_INTERVAL_MS = 5_000;
export const OUTBOX_GRACE_MS = 30_000;

/**
 * The worker's end of the webhook outbox: every few seconds it starts the workflows of
 * delivery rows that were committed but never started (Temporal was away, or the writer
 * stopped between its commit and its start). Writers start their own rows at once; this is
 * the safety net, so it leaves rows younger than OUTBOX_GRACE_MS to them. Several workers may
 * drain together: a row's workflow id lets only one start win.
 */
export function drainWebhookOutboxEvery(
  deps: { orm: Orm; temporalClient: Client; config: Config; logger: Logger },
  intervalMs = OUTBOX_INTERVAL_MS,
  graceMs = OUTBOX_GRACE_MS,
): { close(): Promise<void> } {
  const temporal = { client: deps.temporalClient, taskQueue: deps.config.temporal.taskQueue };
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = drainWebhookOutbox(deps.orm.em.fork(), temporal, deps.logger, graceMs).then(
      (started) => started && deps.logger.info({ started }, 'webhook outbox: started deliveries nobody had started'),
      (error: unknown) => deps.logger.warn({ err: error }, 'webhook outbox drain failed; next try in a few seconds'),
    );
  }, intervalMs);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
