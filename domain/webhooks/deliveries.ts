import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Webhook, WebhookDelivery, WebhookDeliveryStatus } from '../../entities';
import type { Logger } from '../../lib/logger';
import { startWebhookDelivery, type TemporalAccess } from '../temporal';
import { WEBHOOK_TEST_EVENT } from './event-types';
import { insertDeliveries } from './outbox';

/**
 * The outbox of webhook deliveries. Whoever records a change that operators are told about
 * also writes, in the same transaction, one delivery row per subscribed endpoint; a
 * workflow per row then delivers it. The row is written even when Temporal or the worker is
 * away, and a worker starts the workflows of rows nobody started (`drainWebhookOutbox`), so
 * an event is delivered once a worker is back; the row's unique (endpoint, event) and its
 * workflow id keep one event from becoming two messages.
 */

/** A `webhook.test` message for one endpoint, whatever it subscribed to. */
export async function recordTestEvent(em: EntityManager, webhook: Webhook, requestedBy: string | undefined): Promise<WebhookDelivery> {
  const id = randomUUID();
  const [delivery] = await insertDeliveries(
    em,
    {
      id: `webhook.test:${id}`,
      type: WEBHOOK_TEST_EVENT,
      organizationId: webhook.organization.id,
      at: new Date(),
      data: { webhookId: webhook.id, requestedBy: requestedBy ?? null, link: `/api/webhooks/${webhook.id}` },
    },
    [webhook],
    false,
  );
  return delivery!;
}

/**
 * How many workflow starts one call keeps in flight. A burst of events (100 runs failing
 * together) is one drain of 100 rows: started one after another, the last waited for 99
 * round trips to Temporal (seconds on a loaded machine, bench/webhooks.bench.ts); all at
 * once, a large burst would open as many requests as rows.
 */
export const WEBHOOK_START_CONCURRENCY = 16;

/**
 * Starts the rows' workflows (after their transaction committed), WEBHOOK_START_CONCURRENCY
 * at a time, and notes it on the rows. A start refused because one runs already is that row
 * started; any other failure leaves the row for the worker's drain.
 */
export async function startWebhookDeliveries(
  em: EntityManager,
  temporal: TemporalAccess,
  logger: Logger,
  deliveries: Pick<WebhookDelivery, 'id' | 'organization'>[],
  concurrency = WEBHOOK_START_CONCURRENCY,
): Promise<number> {
  const started: string[] = [];
  const start = async (delivery: Pick<WebhookDelivery, 'id' | 'organization'>) => {
    try {
      await startWebhookDelivery(temporal, { deliveryId: delivery.id, organizationId: delivery.organization.id });
      started.push(delivery.id);
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) started.push(delivery.id);
      else logger.warn({ err: error, deliveryId: delivery.id }, 'webhook delivery not started; the outbox drain will start it');
    }
  };
  // A few lanes, each taking the next row when its start answered: oldest rows first, and a slow start holds up one lane only.
  let next = 0;
  const lane = async () => {
    while (next < deliveries.length) await start(deliveries[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, deliveries.length)) }, lane));
  if (started.length)
    await em.nativeUpdate(WebhookDelivery, { id: { $in: started }, workflowStartedAt: null }, { workflowStartedAt: new Date() });
  return started.length;
}

/**
 * Starts the workflows of rows nobody started: written while Temporal was away, or by a
 * process that stopped between its commit and its start. `olderThanMs` leaves fresh rows to
 * the writer that is about to start them.
 */
export async function drainWebhookOutbox(
  em: EntityManager,
  temporal: TemporalAccess,
  logger: Logger,
  olderThanMs: number,
  limit = 100,
  organizations?: readonly string[],
): Promise<number> {
  const rows = await em.find(
    WebhookDelivery,
    {
      workflowStartedAt: null,
      status: WebhookDeliveryStatus.PENDING,
      createdAt: { $lt: new Date(Date.now() - olderThanMs) },
      ...(organizations ? { organization: { $in: [...organizations] } } : {}),
    },
    { orderBy: { createdAt: 'asc' }, limit, fields: ['id', 'organization'] },
  );
  return rows.length ? startWebhookDeliveries(em, temporal, logger, rows) : 0;
}

/** An operator asks for a finished delivery again: the same message (same `webhook-id`), a fresh schedule. */
export async function redeliver(em: EntityManager, delivery: WebhookDelivery): Promise<void> {
  delivery.status = WebhookDeliveryStatus.PENDING;
  delivery.nextAttemptAt = new Date();
  delivery.workflowStartedAt = undefined;
  await em.flush();
}
