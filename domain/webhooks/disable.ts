import type { EntityManager } from '@mikro-orm/postgresql';
import { Webhook, WebhookDelivery, WebhookDeliveryStatus } from '../../entities';
import type { Logger } from '../../lib/logger';
import { recordAudit } from '../audit';
import { recordWebhookEvent } from './outbox';

/**
 * Disables the endpoint of `failed` (a delivery that ran out of retries, about a day after its
 * first attempt) when no delivery to it succeeded since that first attempt: it failed every
 * delivery for a day. Audited without an actor (the fleet did it), and announced as a
 * `webhook.disabled` event to the organisation's other endpoints that subscribed to it.
 * Turning it on again is `PUT /api/webhooks/:id {enabled: true}`.
 */
export async function disableIfDeadSince(em: EntityManager, failed: WebhookDelivery, logger: Logger): Promise<boolean> {
  const webhook = failed.webhook;
  const since = failed.createdAt;
  const delivered = await em.count(WebhookDelivery, { webhook, status: WebhookDeliveryStatus.DELIVERED, deliveredAt: { $gte: since } });
  if (delivered || !webhook.enabled) return false;
  // Only the first of several deliveries failing at once disables it, and audits it once.
  const changed = await em.nativeUpdate(
    Webhook,
    { id: webhook.id, enabled: true },
    { enabled: false, disabledReason: `every delivery failed since ${since.toISOString()}` },
  );
  if (!changed) return false;
  recordAudit(em, {
    organizationId: webhook.organization.id,
    action: 'webhook.disabled',
    resourceType: 'webhook',
    resourceId: webhook.id,
    changes: { enabled: { from: true, to: false }, failingSince: since.toISOString(), lastDeliveryId: failed.id },
  });
  await em.flush();
  await recordWebhookEvent(em, {
    id: `webhook.disabled:${webhook.id}:${since.toISOString()}`,
    type: 'webhook.disabled',
    organizationId: webhook.organization.id,
    at: new Date(),
    data: {
      webhookId: webhook.id,
      status: 'DISABLED',
      reason: `every delivery failed since ${since.toISOString()}`,
      link: `/api/webhooks/${webhook.id}`,
    },
  });
  logger.warn({ webhookId: webhook.id, since }, 'webhook endpoint disabled: every delivery failed for a day');
  return true;
}
