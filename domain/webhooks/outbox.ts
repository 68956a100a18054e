import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Webhook, WebhookDelivery, WebhookDeliveryStatus } from '../../entities';
import type { WEBHOOK_TEST_EVENT, WebhookEventType } from './event-types';

/**
 * The writing end of the webhook outbox (deliveries.ts starts what it wrote). Whoever records
 * a change operators are told about writes, in the same transaction, one delivery row per
 * subscribed endpoint, and a notice on WEBHOOK_OUTBOX_CHANNEL that PostgreSQL sends on commit.
 */

/** A worker LISTENs here and starts the workflows of new rows (worker/webhook-outbox.ts). */
export const WEBHOOK_OUTBOX_CHANNEL = 'fleet_webhooks';

export interface WebhookEvent {
  /** Stable for the fact it reports (e.g. `execution.failed:<executionId>`): raising it again is a no-op. */
  id: string;
  type: WebhookEventType | typeof WEBHOOK_TEST_EVENT;
  organizationId: string;
  at: Date;
  /** Ids, status, reason and an API link; never prompt text, outputs, answers or secrets. */
  data: Record<string, string | number | boolean | null>;
}

/** The signed body: Standard Webhooks' `{type, timestamp, data}`. */
export function webhookPayload(event: WebhookEvent): Record<string, unknown> {
  return { type: event.type, timestamp: event.at.toISOString(), data: { organizationId: event.organizationId, ...event.data } };
}

/** `notify: false` for a writer that starts its rows itself at once (the API's test message). */
export async function insertDeliveries(
  em: EntityManager,
  event: WebhookEvent,
  webhooks: Webhook[],
  notify = true,
): Promise<WebhookDelivery[]> {
  if (!webhooks.length) return [];
  const rows = webhooks.map((webhook) => ({
    id: randomUUID(),
    webhook: webhook.id,
    organization: event.organizationId,
    eventId: event.id,
    eventType: event.type,
    payload: webhookPayload(event),
    status: WebhookDeliveryStatus.PENDING,
    attempts: 0,
    createdAt: new Date(),
    updatedAt: new Date(),
  }));
  // The same event raised again (a retried activity) finds its rows there and adds none.
  await em.createQueryBuilder(WebhookDelivery).insert(rows).onConflict(['webhook', 'event_id']).ignore().execute();
  // Delivered with the commit: a worker listening starts the rows' workflows at once.
  if (notify) await em.execute('select pg_notify(?, ?)', [WEBHOOK_OUTBOX_CHANNEL, 'new']);
  return em.find(WebhookDelivery, { eventId: event.id, webhook: { $in: webhooks.map((w) => w.id) } });
}

/** Outbox rows for every enabled endpoint of the organisation subscribed to the event's type. */
export async function recordWebhookEvent(em: EntityManager, event: WebhookEvent): Promise<WebhookDelivery[]> {
  const webhooks = await em.find(Webhook, { organization: event.organizationId, enabled: true });
  return insertDeliveries(
    em,
    event,
    webhooks.filter((w) => w.events.includes(event.type)),
  );
}
